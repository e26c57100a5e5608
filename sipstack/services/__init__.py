"""
Services built on the stack: the location store, digest authentication, and
(later) the registrar and the proxy that use them.

This is layer 5 (docs/architecture.md): it uses the stack's public API and the
core values, and may use Twisted.  See docs/services.md.
"""
