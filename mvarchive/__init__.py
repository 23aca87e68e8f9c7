"""mvarchive: archive multi-camera image datasets with learned multi-view codecs."""

__version__ = "0.1.0"
