"""
Interoperability tests: sipstack's services against independent SIP
implementations (SIPp, Debian's C{sip-tester}), over real loopback sockets.
They skip, saying why, where the other implementation is not installed; CI
installs it so that they never skip there.
"""
