"""The studio's tables (SQLAlchemy 2 declarative mapping). Alembic migrations own the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SAMPLE_SOURCES = ("upload", "capture", "review", "demo", "import")
MODEL_STATUSES = ("candidate", "active", "retired")
DECISIONS = ("pass", "fail", "review")
SAMPLE_SPLITS = ("train", "held_out")  # held-out samples are kept for evaluation, never trained on


def utc_now() -> datetime:
    """The current time in UTC, naive (every timestamp in the database is naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _enum(values: tuple[str, ...], name: str) -> Enum:
    return Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: DateTime()}


class Tool(Base):
    """An inspection tool: one kind of part, its classes, its region of interest and settings.

    Its active models are the versions with status ``active`` (at most one per method).
    """

    __tablename__ = "tool"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    class_names: Mapped[list[str]]
    good_class: Mapped[str] = mapped_column(String(100), default="good")
    roi: Mapped[list[float] | None] = mapped_column(JSON, default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Sample(Base):
    """A labelled training image of a tool; the image itself lives in the image store."""

    __tablename__ = "sample"
    __table_args__ = (
        UniqueConstraint("tool_id", "sha256", name="tool_sha256"),
        Index("ix_sample_tool_label", "tool_id", "deleted", "label"),
        Index("ix_sample_tool_source", "tool_id", "deleted", "source"),
        Index("ix_sample_tool_split", "tool_id", "deleted", "split"),
        Index("ix_sample_tool_created", "tool_id", "deleted", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tool_id: Mapped[int] = mapped_column(ForeignKey("tool.id", ondelete="CASCADE"))
    image_key: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(_enum(SAMPLE_SOURCES, "sample_source"))
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # dataset management (migration 0007)
    split: Mapped[str] = mapped_column(_enum(SAMPLE_SPLITS, "sample_split"), default="train")
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    thumb_key: Mapped[str | None] = mapped_column(String(200), default=None)
    mask_key: Mapped[str | None] = mapped_column(String(200), default=None)
    phash: Mapped[str | None] = mapped_column(String(16), default=None)  # 64-bit dHash, hex
    original_name: Mapped[str | None] = mapped_column(String(300), default=None)


ACTIVE = text("status = 'active'")


class ModelVersion(Base):
    """A trained model of a tool: its method (a name in ``models.registry``), artifact folder, metrics and
    life-cycle status. A tool has at most one active version per method (a partial unique index)."""

    __tablename__ = "model_version"
    __table_args__ = (
        Index("uq_model_version_active_method", "tool_id", "method", unique=True,
              sqlite_where=ACTIVE, postgresql_where=ACTIVE),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tool_id: Mapped[int] = mapped_column(ForeignKey("tool.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    profile: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(_enum(MODEL_STATUSES, "model_status"))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_dir: Mapped[str] = mapped_column(String(500))
    # {"files": {name: {"key", "sha256", "size"}}}: the folder's files in the object store (None: older rows)
    artifact_manifest: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    train_seconds: Mapped[float]
    n_samples: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Inspection(Base):
    """One inspected part: the model's decision, scores and timing; the image when kept."""

    __tablename__ = "inspection"
    __table_args__ = (
        Index("ix_inspection_tool_time", "tool_id", "created_at"),
        Index("ix_inspection_review_queue", "needs_review", "tool_id", "created_at"),
        Index("ix_inspection_analytics", "tool_id", "created_at", "decision", "score", "latency_ms", "label",
              "model_version_id", "station"),  # analytics: covers the grouped queries
        Index("ix_inspection_tool_station_time", "tool_id", "station", "created_at"),  # analytics
        Index("ix_inspection_version_time", "model_version_id", "created_at"),  # analytics: drift
        Index("ix_inspection_review_priority", "needs_review", "review_priority", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tool_id: Mapped[int] = mapped_column(ForeignKey("tool.id", ondelete="CASCADE"))
    station: Mapped[str] = mapped_column(String(100), default="default")
    recipe: Mapped[str | None] = mapped_column(String(100), default=None)  # the product recipe of a line station
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_version.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    decision: Mapped[str] = mapped_column(_enum(DECISIONS, "decision"))
    label: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    anomaly_score: Mapped[float | None] = mapped_column(Float, default=None)
    opinions: Mapped[dict[str, Any]] = mapped_column(default=dict)  # each model's decision and score
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)  # decided by one model of two
    latency_ms: Mapped[float] = mapped_column(Float)
    image_key: Mapped[str | None] = mapped_column(String(200), default=None)
    map_key: Mapped[str | None] = mapped_column(String(200), default=None)  # the defect map (8-bit PNG), when kept
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    review_priority: Mapped[int] = mapped_column(SmallInteger, default=lambda context: queue_priority(
        context.get_current_parameters()))  # 0 first; see queue_priority
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)  # a reviewer session
    claim_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # the idempotency key of an inspection a station spooled while the database was away (else None)
    record_key: Mapped[str | None] = mapped_column(String(36), unique=True, default=None)

    review: Mapped[Review | None] = relationship(back_populates="inspection")


class Review(Base):
    """An operator's verdict on an inspection (the true label as a person sees it)."""

    __tablename__ = "review"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(
        ForeignKey("inspection.id", ondelete="CASCADE"), unique=True
    )
    verdict: Mapped[str] = mapped_column(String(100))
    reviewer: Mapped[str] = mapped_column(String(100), default="operator")
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    device: Mapped[str] = mapped_column(String(100), default="")
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("sample.id", ondelete="SET NULL"), default=None)

    inspection: Mapped[Inspection] = relationship(back_populates="review")


# --- review queue priority and audit log (issue 8) --------------------------------------------------
QUEUE_PRIORITIES = {"disagreement": 0, "uncertain": 1, "degraded": 2, "audit": 3}


def queue_priority(fields: dict[str, Any]) -> int:
    """Rank of an inspection in the review queue from its stored fields (lower comes first).

    Models that disagree (their ``opinions`` hold different decisions) come first, then a score inside
    the uncertainty band (decision ``review``), then a decision taken by one model of two (``degraded``),
    then everything else (e.g. passes drawn for audit).
    """
    opinions = fields.get("opinions") or {}
    decisions = {o.get("decision") for o in opinions.values() if isinstance(o, dict) and o.get("decision")}
    if len(decisions - {"review"}) > 1:
        return QUEUE_PRIORITIES["disagreement"]
    if fields.get("decision") == "review":
        return QUEUE_PRIORITIES["uncertain"]
    if fields.get("degraded"):
        return QUEUE_PRIORITIES["degraded"]
    return QUEUE_PRIORITIES["audit"]


class AuditEntry(Base):
    """Who did what, when and from which device: every verdict, undo, promotion and rollback.

    Append-only and hash-chained (``storage/audit_chain.py``): ``seq`` is the row's position in the chain
    (1, 2, ...), ``prev_hash`` the ``hash`` of the row before it, ``hash`` the SHA-256 of its own content
    and ``prev_hash``. Database triggers refuse UPDATE and DELETE (migration 0013_audit).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    device: Mapped[str] = mapped_column(String(100), default="")
    action: Mapped[str] = mapped_column(String(32))
    # no foreign key: deleting a tool must not rewrite (SET NULL) the rows that record what was done to it
    tool_id: Mapped[int | None] = mapped_column(default=None)
    target: Mapped[str] = mapped_column(String(100))  # e.g. "inspection 12", "model_version 3"
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The chain's newest position and hash (one row, id 1): appends lock it, so that concurrent writers
    extend one linear chain, and ``audit verify`` compares it with the newest row."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))


from storage import accounts, api_tokens, fleet_tables, line_tables, rollup_tables  # noqa: E402,F401  (tables sharing Base: line 17, API 19, accounts 20, fleet and rollup 21)
