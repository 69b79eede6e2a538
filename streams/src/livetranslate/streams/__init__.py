"""JetStream topology, the embedded broker and the plumbing shared by stages."""

from livetranslate.streams.delivery import Delivery, Kept, Rejected, consume
from livetranslate.streams.publishing import Publisher
from livetranslate.streams.stage import Stage, StageRunner

__all__ = ["Delivery", "Kept", "Publisher", "Rejected", "Stage", "StageRunner", "consume"]
