"""Object-storage locations: is the filesystem a URI needs installed? Asked before anything is paid for.

Airflow reaches ``s3://``, ``gs://`` and other object stores through filesystems that providers
register; without the provider, a results download would fail only after the batch job ran and was
billed. Operators ask here when they are built (a DAG that cannot work fails to import instead).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_gemini_batch.exceptions import GeminiBatchConfigError

__all__ = ["PACKAGE_FOR_SCHEME", "require_filesystem"]

#: The package to install for each common scheme.
PACKAGE_FOR_SCHEME = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "s3a": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "az": "apache-airflow-providers-microsoft-azure",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
}


def _has_fs(scheme: str) -> bool:
    try:
        from airflow.sdk.io.fs import has_fs
    except ImportError:  # Airflow < 3.1
        from airflow.io import has_fs  # type: ignore[no-redef,attr-defined]
    return bool(has_fs(scheme))


def require_filesystem(location: Any, *, what: str = "location") -> None:
    """Raise when ``location`` is a URI whose filesystem no installed provider registers.

    Local paths, ``file://`` URIs, ``ObjectStoragePath`` objects (built, so their filesystem exists)
    and templates whose scheme is itself templated pass; ``s3://bucket/{{ ds }}/`` is checked.
    Nothing is opened or connected to.

    :param what: how the message names the location, e.g. ``"destination"``.
    :raises GeminiBatchConfigError: naming the package to install.
    """
    if not isinstance(location, str):
        return
    written = location.split("{{", 1)[0]  # A template's scheme is known when it is written out before it.
    if "://" not in written:
        return
    scheme = written.split("://", 1)[0].strip().lower()
    if _has_fs(scheme):
        return
    package = PACKAGE_FOR_SCHEME.get(scheme)
    install = f"pip install '{package}'" if package else f"install the Airflow provider that registers {scheme}://"
    raise GeminiBatchConfigError(
        f"The {what} {location!r} needs a filesystem for {scheme}:// and none is installed: {install}, "
        "or use a local path or file:// URI."
    )
