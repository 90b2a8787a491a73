"""What to install so that an operator rtstream does not run natively runs through the real Airflow:
the `rtstream[airflow]` extra and, for a provider's operator, the provider's package.

Airflow names a provider's package after its module path: `airflow.providers.http` is
`apache-airflow-providers-http`, `airflow.providers.common.sql` is `apache-airflow-providers-common-sql`.
"""

from __future__ import annotations

# provider namespaces whose package name takes two segments of the module path
_TWO_SEGMENTS = {"apache", "common", "microsoft", "cncf", "dbt"}
EXTRA = "pip install 'rtstream[airflow]'"


def provider_package(module: str) -> str | None:
    """`apache-airflow-providers-...` for a module of a provider, else None (Airflow's core)."""
    parts = module.split(".")
    if len(parts) < 3 or parts[:2] != ["airflow", "providers"]:
        return None
    name = parts[2:4] if parts[2] in _TWO_SEGMENTS and len(parts) > 3 else parts[2:3]
    return "apache-airflow-providers-" + "-".join(name).replace("_", "-")


def install_command(module: str, extra_installed: bool = False) -> str:
    """The pip command that makes `module`'s operators run: the extra (unless installed) and the provider."""
    provider = provider_package(module)
    if extra_installed:
        return f"pip install {provider}" if provider else ""
    return EXTRA + (f" {provider}" if provider else "")
