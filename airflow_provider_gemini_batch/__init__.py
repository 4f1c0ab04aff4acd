"""Apache Airflow provider for Google Gemini API Batch Mode."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.4.0"
