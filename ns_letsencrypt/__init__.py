"""ns-letsencrypt: Let's Encrypt certificates for Citrix NetScaler ADC, via dehydrated and NITRO."""

__version__ = "2.0.0.dev0"
__all__ = ["__version__"]
