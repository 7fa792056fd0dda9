"""Community detection: Leiden and Louvain (Numba), connected components, label propagation."""
from keyfarm.community.components import connected_components
from keyfarm.community.labelprop import label_propagation
from keyfarm.community.leiden import leiden, louvain
from keyfarm.community.quality import cpm, modularity

__all__ = ["connected_components", "cpm", "label_propagation", "leiden", "louvain", "modularity"]
