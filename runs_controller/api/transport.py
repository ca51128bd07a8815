"""transport.bubustack.io/v1alpha1 streaming settings (referenced by Story transports).

Only realtime stories use these; a batch controller reads them as opaque configuration. The
kinds Transport and TransportBinding themselves are not modelled here.
"""

from __future__ import annotations

from typing import Annotated

from runs_controller.api.refs import DNS_LABEL_PATTERN
from runs_controller.api.schema import F, Int32, Struct

BUFFER_DROP_POLICIES = ("drop_newest", "drop_oldest")
FLOW_CONTROL_MODES = ("none", "credits", "window")
ORDERING_MODES = ("none", "per_stream", "per_partition")
DELIVERY_SEMANTICS = ("best_effort", "at_least_once")
REPLAY_MODES = ("none", "memory", "durable")
LANE_KINDS = ("audio", "video", "binary", "payload", "control")
LANE_DIRECTIONS = ("publish", "subscribe", "bidirectional")
FAN_IN_MODES = ("all", "any", "quorum")
ROUTING_MODES = ("auto", "hub", "p2p")
FAN_OUT_MODES = ("sequential", "parallel")
ROUTING_RULE_ACTIONS = ("allow", "deny")
PARTITION_MODES = ("none", "preserve", "hash")
UPGRADE_STRATEGIES = ("rolling", "drain_cutover", "blue_green")
RECORDING_MODES = ("off", "metadata", "payload")

BufferDropPolicy = Annotated[str, F(enum=BUFFER_DROP_POLICIES)]
FlowControlMode = Annotated[str, F(enum=FLOW_CONTROL_MODES)]
OrderingMode = Annotated[str, F(enum=ORDERING_MODES)]
DeliverySemantics = Annotated[str, F(enum=DELIVERY_SEMANTICS)]
ReplayMode = Annotated[str, F(enum=REPLAY_MODES)]
LaneKind = Annotated[str, F(enum=LANE_KINDS)]
LaneDirection = Annotated[str, F(enum=LANE_DIRECTIONS)]
FanInMode = Annotated[str, F(enum=FAN_IN_MODES)]
RoutingMode = Annotated[str, F(enum=ROUTING_MODES)]
FanOutMode = Annotated[str, F(enum=FAN_OUT_MODES)]
RoutingRuleAction = Annotated[str, F(enum=ROUTING_RULE_ACTIONS)]
PartitionMode = Annotated[str, F(enum=PARTITION_MODES)]
TransportUpgradeStrategy = Annotated[str, F(enum=UPGRADE_STRATEGIES)]
RecordingMode = Annotated[str, F(enum=RECORDING_MODES)]

NonNegativeInt32 = Annotated[Int32, F(minimum=0)]
PositiveInt32 = Annotated[Int32, F(minimum=1)]
Percent = Annotated[Int32, F(minimum=0, maximum=100)]


class TransportBufferSettings(Struct, frozen=True):
    """Limits of the hub's per-downstream buffer and what to drop when it is full."""

    max_messages: NonNegativeInt32 | None = None
    """Most messages the buffer may hold."""
    max_bytes: NonNegativeInt32 | None = None
    """Most bytes the buffer may hold."""
    max_age_seconds: NonNegativeInt32 | None = None
    """Longest time a message may wait in the buffer."""
    drop_policy: BufferDropPolicy | None = None
    """Which end of the buffer loses messages on overflow."""


class TransportBackpressureSettings(Struct, frozen=True):
    """Backpressure configuration."""

    buffer: TransportBufferSettings | None = None
    """Buffer limits and overflow behaviour."""


class TransportFlowCredits(Struct, frozen=True):
    """A credit window in messages and bytes."""

    messages: NonNegativeInt32 | None = None
    """Window size in messages."""
    bytes: NonNegativeInt32 | None = None
    """Window size in bytes."""


class TransportFlowAckSettings(Struct, frozen=True):
    """How often acknowledgements (credits) are sent back upstream."""

    messages: NonNegativeInt32 | None = None
    """Acknowledge after this many messages."""
    bytes: NonNegativeInt32 | None = None
    """Acknowledge after this many bytes."""
    max_delay: str | None = None
    """Longest gap between acknowledgements, as a duration string such as "250ms"."""


class TransportFlowThreshold(Struct, frozen=True):
    """A buffer fill level."""

    buffer_pct: Percent | None = None
    """Fill level in percent (0-100)."""


class TransportFlowControlSettings(Struct, frozen=True):
    """Credit- or window-based flow control and acknowledgement pacing."""

    mode: FlowControlMode | None = None
    """The flow-control strategy."""
    initial_credits: TransportFlowCredits | None = None
    """Starting credit window in credits or window mode."""
    ack_every: TransportFlowAckSettings | None = None
    """Acknowledgement pacing."""
    pause_threshold: TransportFlowThreshold | None = None
    """Fill level at which upstream is paused."""
    resume_threshold: TransportFlowThreshold | None = None
    """Fill level at which upstream resumes."""


class TransportReplaySettings(Struct, frozen=True):
    """Where replay data is kept and for how long."""

    mode: ReplayMode | None = None
    """Replay storage mode."""
    retention_seconds: NonNegativeInt32 | None = None
    """How long replay data is kept."""
    checkpoint_interval: str | None = None
    """How often checkpoints are written, as a duration string such as "1s"."""


class TransportDeliverySettings(Struct, frozen=True):
    """Ordering, delivery guarantee and replay."""

    ordering: OrderingMode | None = None
    """Ordering guarantee."""
    semantics: DeliverySemantics | None = None
    """Delivery guarantee."""
    replay: TransportReplaySettings | None = None
    """Replay and retention."""


class TransportRoutingRuleTarget(Struct, frozen=True):
    """The downstream steps a routing rule applies to."""

    steps: list[str] | None = None
    """Downstream step names; empty means every downstream step."""


class TransportRoutingRule(Struct, frozen=True):
    """A conditional filter on downstream selection, evaluated per packet."""

    name: str | None = None
    """Optional label for logs and metrics."""
    when: str | None = None
    """Template expression evaluated in the streaming runtime scope."""
    action: RoutingRuleAction | None = None
    """Whether matching targets are allowed or denied."""
    target: TransportRoutingRuleTarget | None = None
    """Downstream steps the rule applies to."""


class TransportRoutingSettings(Struct, frozen=True):
    """Topology (hub or peer-to-peer) and fan-out policy."""

    mode: RoutingMode | None = None
    """Routing topology; auto decides from the DAG."""
    fan_out: FanOutMode | None = None
    """How a stream is dispatched to several downstream steps."""
    max_downstreams: PositiveInt32 | None = None
    """Upper bound on downstream targets per step."""
    rules: list[TransportRoutingRule] | None = None
    """Conditional routing filters."""


class TransportLane(Struct, frozen=True):
    """A named lane with optional per-lane buffer caps."""

    name: Annotated[str, F(min_length=1, pattern=DNS_LABEL_PATTERN)]
    """Lane name, e.g. "audio" or "telemetry"."""
    kind: LaneKind
    """Media or payload kind carried by the lane."""
    direction: LaneDirection | None = None
    """Publish, subscribe or both."""
    description: str | None = None
    """Free-text note."""
    max_messages: NonNegativeInt32 | None = None
    """Buffered message cap, per downstream."""
    max_bytes: NonNegativeInt32 | None = None
    """Buffered byte cap, per downstream."""


class TransportFanInSettings(Struct, frozen=True):
    """How several upstream steps are joined into one."""

    mode: FanInMode | None = None
    """Wait for all, any or a quorum of upstreams."""
    quorum: PositiveInt32 | None = None
    """Upstreams needed in quorum mode."""
    timeout_seconds: NonNegativeInt32 | None = None
    """Longest wait for a join."""
    max_entries: PositiveInt32 | None = None
    """Most joins kept in memory at once."""


class TransportPartitioningSettings(Struct, frozen=True):
    """How partition ids are assigned to stream envelopes."""

    mode: PartitionMode | None = None
    """Partition assignment mode."""
    key: str | None = None
    """Value hashed in hash mode, e.g. "metadata.user_id"."""
    partitions: PositiveInt32 | None = None
    """Number of partitions in hash mode."""
    sticky: bool | None = None
    """Keep an existing partition assignment."""


class TransportLifecycleSettings(Struct, frozen=True):
    """Drain and cutover behaviour of streaming steps during upgrades."""

    strategy: TransportUpgradeStrategy | None = None
    """Upgrade strategy."""
    drain_timeout_seconds: NonNegativeInt32 | None = None
    """Longest drain before cutover."""
    max_in_flight: NonNegativeInt32 | None = None
    """Most in-flight messages allowed during an upgrade."""


class TransportMetricsSettings(Struct, frozen=True):
    """Metrics switch."""

    enabled: bool | None = None
    """Emit metrics (on by default)."""


class TransportTracingSettings(Struct, frozen=True):
    """Tracing options."""

    enabled: bool | None = None
    """Emit traces (on by default)."""
    sample_rate: Percent | None = None
    """Sampled share in percent (0-100)."""
    sample_policy: str | None = None
    """Sampling policy name, e.g. "rate" or "rules"."""


class TransportWatermarkSettings(Struct, frozen=True):
    """Event-time watermark tracking."""

    enabled: bool | None = None
    """Track watermarks and lag."""
    timestamp_source: str | None = None
    """Where event time is read from, e.g. "metadata.event_time_ms"."""


class TransportObservabilitySettings(Struct, frozen=True):
    """Metrics, tracing and watermarks."""

    metrics: TransportMetricsSettings | None = None
    """Per-lane and hub metrics."""
    tracing: TransportTracingSettings | None = None
    """Distributed tracing."""
    watermark: TransportWatermarkSettings | None = None
    """Event-time watermark and lag tracking."""


class TransportRecordingSettings(Struct, frozen=True):
    """Optional recording or sampling of the stream."""

    mode: RecordingMode | None = None
    """Record nothing, metadata only, or full payloads."""
    sample_rate: Percent | None = None
    """Recorded share in percent (0-100)."""
    retention_seconds: NonNegativeInt32 | None = None
    """How long recordings are kept."""
    redact_fields: list[str] | None = None
    """JSON field paths blanked before recording, e.g. "payload.api_key"."""


class TransportStreamingSettings(Struct, frozen=True):
    """Streaming policies of a transport."""

    backpressure: TransportBackpressureSettings | None = None
    """Buffer limits and overflow behaviour."""
    flow_control: TransportFlowControlSettings | None = None
    """Credit- or window-based flow control."""
    delivery: TransportDeliverySettings | None = None
    """Ordering, delivery guarantee and replay."""
    routing: TransportRoutingSettings | None = None
    """Topology and fan-out."""
    lanes: list[TransportLane] | None = None
    """Named lanes (audio, video, binary, payload, control) and their caps."""
    fan_in: TransportFanInSettings | None = None
    """Joining of several upstream steps."""
    partitioning: TransportPartitioningSettings | None = None
    """Partition assignment."""
    lifecycle: TransportLifecycleSettings | None = None
    """Drain, cutover and in-flight limits during upgrades."""
    observability: TransportObservabilitySettings | None = None
    """Metrics, tracing and watermarks."""
    recording: TransportRecordingSettings | None = None
    """Stream recording and sampling."""
