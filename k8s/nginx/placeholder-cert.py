"""Init container: a short-lived self-signed certificate so nginx can start before
certbot has obtained the real one (first deploy). Does nothing once a certificate exists.
Runs in the certbot image, whose Python ships `cryptography`."""
from __future__ import annotations

import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

directory = sys.argv[1] if len(sys.argv) > 1 else "/certs/current"
chain = os.path.join(directory, "fullchain.pem")
if os.path.exists(chain):
    sys.exit(0)
os.makedirs(directory, exist_ok=True)
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nacritan placeholder")])
now = datetime.datetime.now(datetime.timezone.utc)
certificate = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5))
    .not_valid_after(now + datetime.timedelta(days=30))
    .sign(key, hashes.SHA256())
)
fd = os.open(os.path.join(directory, "privkey.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "wb") as handle:
    handle.write(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
with open(chain, "wb") as handle:
    handle.write(certificate.public_bytes(serialization.Encoding.PEM))
print(f"wrote a placeholder certificate to {directory}")
