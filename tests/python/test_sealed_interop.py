"""Encrypted delivery against the real PyCryptodome (docs/encrypted-delivery.md).

The RSA format is the scenario's sample's: files it seals open with
`roost-canary decrypt`, and what `roost-canary encrypt` seals opens with the
sample's own decrypt steps. The EC P-256 format is ours: an implementation
written here from the document alone, on `cryptography`, reads and writes
it, so the document and the code cannot drift apart. Keys come from
PyCryptodome, from `cryptography`, and from Roost's CreateKeysAndCertificate.
"""

import datetime
import subprocess

import pytest
from Crypto.Cipher import AES, PKCS1_OAEP
from Crypto.PublicKey import RSA
from Crypto.Random import get_random_bytes
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from canary_support import canary_binary

RSA_SCHEME = "rsa-oaep-sha1-aes-eax"
EC_SCHEME = "ecies-p256-hkdf-sha256-aes256gcm"


def canary(*args):
    return subprocess.run([canary_binary(), *map(str, args)], capture_output=True, text=True, timeout=60)


def decrypt(tmp_path, key_pem: bytes, sealed: bytes, scheme=None):
    """`roost-canary decrypt`: (the process, the decrypted bytes or None)."""
    (tmp_path / "device.key").write_bytes(key_pem)
    (tmp_path / "file.sealed").write_bytes(sealed)
    out = tmp_path / "file.opened"
    out.unlink(missing_ok=True)
    args = ["decrypt", "--key", tmp_path / "device.key", "--in", tmp_path / "file.sealed", "--out", out]
    if scheme:
        args += ["--scheme", scheme]
    proc = canary(*args)
    return proc, (out.read_bytes() if out.exists() else None)


def encrypt(tmp_path, recipient_pem: bytes, plaintext: bytes):
    """`roost-canary encrypt`: (the scheme it printed, the sealed bytes)."""
    (tmp_path / "recipient.pem").write_bytes(recipient_pem)
    (tmp_path / "file.plain").write_bytes(plaintext)
    proc = canary("encrypt", "--to", tmp_path / "recipient.pem", "--in", tmp_path / "file.plain",
                  "--out", tmp_path / "file.sealed")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), (tmp_path / "file.sealed").read_bytes()


def sample_encrypt(public_pem: bytes, data: bytes) -> bytes:
    """The scenario's sample's Encrypt, its calls in its order."""
    recipient_key = RSA.import_key(public_pem)
    session_key = get_random_bytes(16)
    cipher_rsa = PKCS1_OAEP.new(recipient_key)
    enc_session_key = cipher_rsa.encrypt(session_key)
    cipher_aes = AES.new(session_key, AES.MODE_EAX)
    ciphertext, tag = cipher_aes.encrypt_and_digest(data)
    return enc_session_key + cipher_aes.nonce + tag + ciphertext


def sample_decrypt(private_pem: bytes, sealed: bytes) -> bytes:
    """The scenario's sample's Descrypt: split by the key's size, 16, 16, the rest."""
    private_key = RSA.import_key(private_pem)
    k = private_key.size_in_bytes()
    enc_session_key, nonce, tag, ciphertext = sealed[:k], sealed[k:k + 16], sealed[k + 16:k + 32], sealed[k + 32:]
    session_key = PKCS1_OAEP.new(private_key).decrypt(enc_session_key)
    cipher_aes = AES.new(session_key, AES.MODE_EAX, nonce)
    return cipher_aes.decrypt_and_verify(ciphertext, tag)


def new_pair_pem() -> bytes:
    """What a rotation delivers: a certificate and a key, as text."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def self_signed(private_key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(private_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(private_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("bits", [2048, 3072])
@pytest.mark.parametrize("pkcs", [1, 8])
def test_a_file_sealed_as_the_sample_does_decrypts(tmp_path, bits, pkcs):
    device = RSA.generate(bits)
    data = new_pair_pem()
    sealed = sample_encrypt(device.publickey().export_key(), data)

    proc, opened = decrypt(tmp_path, device.export_key(pkcs=pkcs), sealed)
    assert proc.returncode == 0, proc.stderr
    assert opened == data
    assert (tmp_path / "file.opened").stat().st_mode & 0o777 == 0o600

    proc, opened = decrypt(tmp_path, device.export_key(pkcs=pkcs), sealed, scheme=RSA_SCHEME)
    assert proc.returncode == 0, proc.stderr
    assert opened == data


def test_the_sample_decrypts_what_roost_seals(tmp_path):
    device = RSA.generate(2048)
    data = new_pair_pem()
    for recipient in [device.publickey().export_key()]:
        scheme, sealed = encrypt(tmp_path, recipient, data)
        assert scheme == RSA_SCHEME
        assert sample_decrypt(device.export_key(), sealed) == data

    # From the device's certificate, as `roost rotate-certs --encrypt` has it.
    device_key = serialization.load_pem_private_key(device.export_key(), password=None)
    scheme, sealed = encrypt(tmp_path, self_signed(device_key), data)
    assert scheme == RSA_SCHEME
    assert sample_decrypt(device.export_key(), sealed) == data


def test_an_altered_file_is_refused_and_nothing_is_written(tmp_path):
    device = RSA.generate(2048)
    sealed = bytearray(sample_encrypt(device.publickey().export_key(), new_pair_pem()))
    sealed[256 + 16] ^= 0x01  # the tag
    proc, opened = decrypt(tmp_path, device.export_key(), bytes(sealed))
    assert proc.returncode != 0
    assert "authentication failed" in proc.stderr
    assert opened is None

    other = RSA.generate(2048)
    proc, opened = decrypt(tmp_path, other.export_key(), bytes(sealed))
    assert proc.returncode != 0 and "authentication failed" in proc.stderr
    assert opened is None

    proc, opened = decrypt(tmp_path, device.export_key(), bytes(sealed), scheme=EC_SCHEME)
    assert proc.returncode != 0
    assert "does not fit the device's RSA 2048-bit key" in proc.stderr
    assert opened is None

    # No certificate or key is a megabyte: such a file is not read at all.
    proc, opened = decrypt(tmp_path, device.export_key(), bytes(1024 * 1024 + 1))
    assert proc.returncode != 0 and "more than the 1048576" in proc.stderr
    assert opened is None


# The EC P-256 format, written from docs/encrypted-delivery.md.
MAGIC = b"RSLD\x01"
INFO = b"roost-sealed ecies-p256-hkdf-sha256-aes256gcm v1"


def uncompressed(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def ec_key(shared: bytes, ephemeral_point: bytes, recipient_point: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=INFO + ephemeral_point + recipient_point).derive(shared)


def ec_open(private_key, sealed: bytes) -> bytes:
    assert sealed[:5] == MAGIC
    ephemeral_point, nonce, body = sealed[5:70], sealed[70:82], sealed[82:]
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ephemeral_point)
    shared = private_key.exchange(ec.ECDH(), ephemeral)
    key = ec_key(shared, ephemeral_point, uncompressed(private_key.public_key()))
    return AESGCM(key).decrypt(nonce, body, sealed[:82])


def ec_seal(public_key, plaintext: bytes) -> bytes:
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    ephemeral_point = uncompressed(ephemeral.public_key())
    shared = ephemeral.exchange(ec.ECDH(), public_key)
    key = ec_key(shared, ephemeral_point, uncompressed(public_key))
    nonce = get_random_bytes(12)
    prefix = MAGIC + ephemeral_point + nonce
    return prefix + AESGCM(key).encrypt(nonce, plaintext, prefix)


def test_the_ec_format_is_as_documented(tmp_path):
    device = ec.generate_private_key(ec.SECP256R1())
    data = new_pair_pem()

    scheme, sealed = encrypt(tmp_path, self_signed(device), data)
    assert scheme == EC_SCHEME
    assert ec_open(device, sealed) == data

    sealed = ec_seal(device.public_key(), data)
    for form in [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]:
        key_pem = device.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
        proc, opened = decrypt(tmp_path, key_pem, sealed, scheme=EC_SCHEME)
        assert proc.returncode == 0, proc.stderr
        assert opened == data


def test_keys_roost_issues_seal_and_open(roost, tmp_path):
    """CreateKeysAndCertificate's pair (EC P-256): sealed to its certificate,
    opened with its private key as the device stores it."""
    issued = roost.boto().create_keys_and_certificate(setAsActive=True)
    data = new_pair_pem()
    scheme, sealed = encrypt(tmp_path, issued["certificatePem"].encode(), data)
    assert scheme == EC_SCHEME
    proc, opened = decrypt(tmp_path, issued["keyPair"]["PrivateKey"].encode(), sealed, scheme=EC_SCHEME)
    assert proc.returncode == 0, proc.stderr
    assert opened == data
    device = serialization.load_pem_private_key(issued["keyPair"]["PrivateKey"].encode(), password=None)
    assert ec_open(device, sealed) == data
