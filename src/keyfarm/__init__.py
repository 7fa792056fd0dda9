"""keyfarm: link API keys through what they share, find farms, score them with evidence.

Public API: `keyfarm.link(folder_or_tables, config=None, seed=0) -> LinkResult`; the stages live in
their modules (io, signals, graph, community, scoring, pipeline, report, enforce).
"""
__version__ = "0.1.0"

from keyfarm.config import Config  # noqa: E402
from keyfarm.io import Tables, load_tables  # noqa: E402
from keyfarm.pipeline import LinkResult, link  # noqa: E402

__all__ = ["Config", "LinkResult", "Tables", "__version__", "link", "load_tables"]
