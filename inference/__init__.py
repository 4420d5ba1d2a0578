"""cfai inference: Cloudflare Workers AI runs through Django."""

__version__ = "0.1.0"
