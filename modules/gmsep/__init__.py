"""gmsep: noise-robust speech separation for SpeechBrain.

A speech-enhancement front-end and a SepFormer (or DPRNN) separator unified in
one network and trained end to end with two losses whose conflicting gradients
are reconciled by gradient modulation (Hu et al., ICASSP 2023).
"""

__version__ = "0.1.0"
