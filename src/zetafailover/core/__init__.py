"""The failover core: pure decisions, the monitor, the timing rule and the node runner.

The core depends only on :mod:`zetafailover.interfaces`; it never imports an implementation.
"""
