"""TLS: the client contexts, the certificate details, and why verification or the handshake failed.

OpenSSL reports only the first verification failure, as a number (`verify_code`); the mapping to
`tls.error` values is below. "Unable to get local issuer certificate" (20) means both "the issuer
is unknown" and "the server did not send its intermediate"; we tell them apart from the chain the
server actually sent (see `classify_verify_error`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

# tls.error values
NONE = "none"
EXPIRED = "certificate-expired"
NOT_YET_VALID = "certificate-not-yet-valid"
NAME_MISMATCH = "name-mismatch"
SELF_SIGNED = "self-signed"
UNTRUSTED_ISSUER = "untrusted-issuer"
MISSING_INTERMEDIATE = "missing-intermediate"
REVOKED = "revoked"
PROTOCOL_MISMATCH = "protocol-mismatch"
CIPHER_MISMATCH = "cipher-mismatch"
HANDSHAKE_FAILED = "handshake-failed"
REQUIRED_NOT_OFFERED = "required-not-offered"

# OpenSSL X509_V_ERR_* numbers (x509_vfy.h)
_VERIFY_CODES = {
    9: NOT_YET_VALID,  # CERT_NOT_YET_VALID
    10: EXPIRED,  # CERT_HAS_EXPIRED
    18: SELF_SIGNED,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: UNTRUSTED_ISSUER,  # SELF_SIGNED_CERT_IN_CHAIN: the chain ends in a root we do not trust
    23: REVOKED,  # CERT_REVOKED
    62: NAME_MISMATCH,  # HOSTNAME_MISMATCH
    63: NAME_MISMATCH,  # EMAIL_MISMATCH
    64: NAME_MISMATCH,  # IP_ADDRESS_MISMATCH
}
_ISSUER_NOT_FOUND = frozenset({2, 20, 21})  # UNABLE_TO_GET_ISSUER_CERT(_LOCALLY), UNABLE_TO_VERIFY_LEAF_SIGNATURE

_PROTOCOL_REASONS = ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION", "NO_PROTOCOLS_AVAILABLE")
_CIPHER_REASONS = ("NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "NO_CIPHER_MATCH", "INSUFFICIENT_SECURITY")


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    not_before: str
    not_after: str
    self_issued: bool
    ca_issuers_urls: tuple[str, ...]  # AIA "CA Issuers": where the issuer certificate can be fetched


def client_context(verify: bool, ca_file: str | None, trust_system: bool = True) -> ssl.SSLContext:
    """A client context; with verify=False it still negotiates normally but accepts any certificate,
    so the certificate can always be read."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        if trust_system:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def cert_info(der: bytes) -> CertInfo:
    cert = x509.load_der_x509_certificate(der)
    urls: list[str] = []
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        urls = [
            str(desc.access_location.value)
            for desc in aia
            if desc.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        ]
    except x509.ExtensionNotFound:
        pass
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        self_issued=cert.subject == cert.issuer,
        ca_issuers_urls=tuple(urls),
    )


def served_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """The certificates the server sent, leaf first, in DER (works without verification).

    Public as `get_unverified_chain()` from Python 3.13; the same method exists on the private
    `_sslobj` since 3.10. Falls back to the leaf alone.
    """
    getter = getattr(sock, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    chain: list[bytes] = []
    if getter is not None:
        for cert in getter() or []:
            chain.append(cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
    if not chain:
        leaf = sock.getpeercert(binary_form=True)
        if leaf:
            chain.append(leaf)
    return chain


def classify_verify_error(code: int, chain: list[CertInfo]) -> str:
    """The tls.error value for an OpenSSL verification failure.

    Issuer not found (20/21/2): when the server sent more than its leaf, it sent its chain and
    that chain leads to a CA we do not trust -> untrusted-issuer. When it sent only the leaf, the
    leaf names where its issuer can be fetched (AIA "CA Issuers", which public CAs always include)
    and is not self-issued, the intermediate is what is missing -> missing-intermediate. A lone
    leaf without that pointer is typical of a private CA -> untrusted-issuer.
    """
    if code in _VERIFY_CODES:
        return _VERIFY_CODES[code]
    if code in _ISSUER_NOT_FOUND:
        if len(chain) == 1 and not chain[0].self_issued and chain[0].ca_issuers_urls:
            return MISSING_INTERMEDIATE
        return UNTRUSTED_ISSUER
    return HANDSHAKE_FAILED


def classify_ssl_error(exc: ssl.SSLError) -> str:
    """The tls.error value for a handshake failure that is not a certificate verification."""
    reason = (exc.reason or "").upper()
    if any(word in reason for word in _PROTOCOL_REASONS):
        return PROTOCOL_MISMATCH
    if any(word in reason for word in _CIPHER_REASONS):
        return CIPHER_MISMATCH
    return HANDSHAKE_FAILED
