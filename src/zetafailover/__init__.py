"""zetafailover: automatic failover for fax servers."""

from zetafailover.interfaces import *  # noqa: F403  (temporary; replaced by the explicit public API)
