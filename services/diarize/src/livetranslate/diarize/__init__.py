"""The diarize stage: who spoke when, with labels stable for a session.

``segmentation`` finds local speakers in a window (pyannote segmentation-3.0,
ONNX), ``embedding`` turns a voice into a vector (CAM++, ONNX, on ``features``'
Kaldi filterbanks), ``clustering`` gives vectors session-wide labels online,
``diarizer`` puts the three together for one session, ``stage`` runs it on
the broker, and ``scoring`` measures the result (diarization error rate).
"""

from livetranslate.diarize.clustering import (
    UNKNOWN,
    Assignment,
    CentroidClusterer,
    ClusterOptions,
    OnlineClusterer,
    Voice,
)
from livetranslate.diarize.diarizer import DiarizerOptions, LabelledTurn, SessionDiarizer
from livetranslate.diarize.embedding import Embedding, FbankOnnxEmbedder, SpeakerEmbedder
from livetranslate.diarize.models import ModelUnavailableError
from livetranslate.diarize.segmentation import (
    AudioArray,
    PyannoteSegmenter,
    SpeakerActivity,
    SpeakerSegmenter,
)

__all__ = [
    "UNKNOWN",
    "Assignment",
    "AudioArray",
    "CentroidClusterer",
    "ClusterOptions",
    "DiarizerOptions",
    "Embedding",
    "FbankOnnxEmbedder",
    "LabelledTurn",
    "ModelUnavailableError",
    "OnlineClusterer",
    "PyannoteSegmenter",
    "SessionDiarizer",
    "SpeakerActivity",
    "SpeakerEmbedder",
    "SpeakerSegmenter",
    "Voice",
]
