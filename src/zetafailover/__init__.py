"""zetafailover: automatic failover for fax servers.

The public API. Everything a fax product needs is importable from here; modules whose names start with an
underscore are private. The test harness (fake clock helpers, simulated cluster, real-process driver, store
contract suite, fault-injecting store) lives in :mod:`zetafailover.testing` and is never imported at run time.
"""

from zetafailover.admin import ClusterView, NodeView, observe_cluster, request_switchover
from zetafailover.assemble import Assembly, build_node, open_store
from zetafailover.clock import FakeClock, SystemClock
from zetafailover.config import NodeConfig, SectionConfig, load_config, parse_config
from zetafailover.core.events import EventLog, read_events
from zetafailover.core.monitor import HeartbeatMonitor, MemberTracker
from zetafailover.core.node import BoundedStore, FailoverNode, Workload
from zetafailover.core.timing import PROFILES, Timing, timing_from_profile
from zetafailover.devices.loopback import LoopbackDevice
from zetafailover.devices.modem import ModemDevice
from zetafailover.errors import (
    ConfigError,
    CorruptRecordError,
    DeviceError,
    FenceError,
    LineSwitchError,
    LostTermError,
    PluginError,
    SelfFencedError,
    StaleTermError,
    StoreError,
    StoreUnavailableError,
    SwitchoverRefusedError,
    TermConflictError,
    TimingError,
    TimingMismatchError,
    UnsupportedPlatformError,
    ValidationError,
    ZetafailoverError,
)
from zetafailover.interfaces import (
    Characteristic,
    Clock,
    DeviceHealth,
    DeviceStatus,
    FaxDevice,
    FenceResult,
    FenceTarget,
    HeartbeatRecord,
    HeartbeatStore,
    InboundSink,
    LineSwitch,
    Liveness,
    MemberRecord,
    NodeState,
    Notifier,
    OutboundFax,
    PageConfirmed,
    PeerMonitor,
    PeerStatus,
    ProcessIdentity,
    ProcessTerminator,
    SendOutcome,
    StoreRead,
    SwitchoverRequest,
    Transition,
)
from zetafailover.lines.pbx import AmiTransport, CommandTransport, PbxLineSwitch, WebhookTransport
from zetafailover.lines.separate import SeparateLinesSwitch
from zetafailover.lines.ysplitter import YSplitterLineSwitch
from zetafailover.notify import HookFailure, PluginNotifier
from zetafailover.plugins import get_plugin_manager, hookimpl, list_plugins
from zetafailover.spool import (
    DirectorySpool,
    Dispatcher,
    Inbound,
    InboundState,
    Job,
    JobState,
    SubmitOptions,
    validate_number,
    validate_tiff,
    write_tiff,
)
from zetafailover.spool.workload import SpoolWorkload
from zetafailover.stores.etcd import EtcdHeartbeatStore
from zetafailover.stores.file import FileHeartbeatStore
from zetafailover.stores.memory import MemoryBackend, MemoryHeartbeatStore
from zetafailover.terminators import CommandTerminator, NullTerminator, PidTerminator

__version__ = "0.1.0"

__all__ = [
    "PROFILES",
    "AmiTransport",
    "Assembly",
    "BoundedStore",
    "Characteristic",
    "Clock",
    "ClusterView",
    "CommandTerminator",
    "CommandTransport",
    "ConfigError",
    "CorruptRecordError",
    "DeviceError",
    "DeviceHealth",
    "DeviceStatus",
    "DirectorySpool",
    "Dispatcher",
    "EtcdHeartbeatStore",
    "EventLog",
    "FailoverNode",
    "FakeClock",
    "FaxDevice",
    "FenceError",
    "FenceResult",
    "FenceTarget",
    "FileHeartbeatStore",
    "HeartbeatMonitor",
    "HeartbeatRecord",
    "HeartbeatStore",
    "HookFailure",
    "Inbound",
    "InboundSink",
    "InboundState",
    "Job",
    "JobState",
    "LineSwitch",
    "LineSwitchError",
    "Liveness",
    "LoopbackDevice",
    "LostTermError",
    "MemberRecord",
    "MemberTracker",
    "MemoryBackend",
    "MemoryHeartbeatStore",
    "ModemDevice",
    "NodeConfig",
    "NodeState",
    "NodeView",
    "Notifier",
    "NullTerminator",
    "OutboundFax",
    "PageConfirmed",
    "PbxLineSwitch",
    "PeerMonitor",
    "PeerStatus",
    "PidTerminator",
    "PluginError",
    "PluginNotifier",
    "ProcessIdentity",
    "ProcessTerminator",
    "SectionConfig",
    "SelfFencedError",
    "SendOutcome",
    "SeparateLinesSwitch",
    "SpoolWorkload",
    "StaleTermError",
    "StoreError",
    "StoreRead",
    "StoreUnavailableError",
    "SubmitOptions",
    "SwitchoverRefusedError",
    "SwitchoverRequest",
    "SystemClock",
    "TermConflictError",
    "Timing",
    "TimingError",
    "TimingMismatchError",
    "Transition",
    "UnsupportedPlatformError",
    "ValidationError",
    "WebhookTransport",
    "Workload",
    "YSplitterLineSwitch",
    "ZetafailoverError",
    "__version__",
    "build_node",
    "get_plugin_manager",
    "hookimpl",
    "list_plugins",
    "load_config",
    "observe_cluster",
    "open_store",
    "parse_config",
    "read_events",
    "request_switchover",
    "timing_from_profile",
    "validate_number",
    "validate_tiff",
    "write_tiff",
]
