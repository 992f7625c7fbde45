"""A throwaway certificate authority and server certificate for HTTPS mode.

The official ``customerio`` library only speaks HTTPS, so benchmarks against it need TLS on
127.0.0.1. ``trustme`` makes a fresh CA per server; clients trust it through the CA bundle file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertificateFiles:
    """PEM files written for one server."""

    ca_bundle: Path
    """The CA certificate clients must trust."""
    cert_chain: Path
    """Server certificate followed by its chain, for uvicorn's ``ssl_certfile``."""
    private_key: Path


def write_certificates(directory: Path) -> CertificateFiles:
    """Create a CA and a certificate valid for 127.0.0.1 and localhost under ``directory``."""
    try:
        import trustme
    except ImportError as exc:  # trustme is a test extra, not a runtime dependency
        raise RuntimeError(
            "TLS mode needs the 'trustme' package: pip install 'cio-sync[test]'"
        ) from exc
    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(
        ca_bundle=directory / "ca.pem",
        cert_chain=directory / "server-chain.pem",
        private_key=directory / "server-key.pem",
    )
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1", "localhost")
    authority.cert_pem.write_to_path(files.ca_bundle)
    files.cert_chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(files.private_key)
    files.private_key.chmod(0o600)
    return files
