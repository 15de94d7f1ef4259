"""embridge: post-hoc bridging of frozen multimodal embedding spaces."""

__version__ = "0.1.0"
