"""Known-answer tests from the RFCs, hard-coded from the RFC texts, run through our wrappers.

* X25519: RFC 7748 section 5.2 (the two single-shot vectors and the iterated vector for 1 and
  1,000 iterations) and section 6.1 (the Alice/Bob Diffie-Hellman example).
* Ed25519: RFC 8032 section 7.1, TEST 1, TEST 2, TEST 3 and TEST SHA(abc).
* HKDF-SHA256: RFC 5869 appendix A, test cases 1, 2 and 3 (A.1 to A.3).
* ChaCha20-Poly1305: RFC 8439 section 2.8.2 (the AEAD example).
* HMAC-SHA256 and HMAC-SHA512: RFC 4231 section 4, test cases 1 to 7 (4.2 to 4.8).
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from entrenous._primitives import aead
from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous._primitives.kdf import hkdf_sha256, hmac_sha256, hmac_sha512
from entrenous._primitives.sign import SigningKey, VerifyKey

h = bytes.fromhex

# --- RFC 7748 (X25519) ------------------------------------------------------------------------

# RFC 7748 section 5.2: (input scalar, input u-coordinate, output u-coordinate). The second
# u-coordinate is printed in the RFC with its top bit set (last byte 0x93); section 5 says to mask
# that bit, so it is kept exactly as printed to check that the wrapper does.
RFC7748_5_2 = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
]


@pytest.mark.req("PRIM-06")
@pytest.mark.parametrize(("scalar", "u", "out"), RFC7748_5_2, ids=["vector1", "vector2"])
def test_rfc7748_5_2_x25519(scalar: str, u: str, out: str) -> None:
    private = X25519PrivateKey.from_bytes(h(scalar))
    assert private.exchange(X25519PublicKey.from_bytes(h(u))) == h(out)


@pytest.mark.req("PRIM-06")
def test_rfc7748_5_2_iterated() -> None:
    # RFC 7748 section 5.2: k = u = 9; repeatedly k, u = X25519(k, u), k.
    # The 1,000,000-iteration value is left out to keep the suite fast.
    expected = {
        1: "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
        1000: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
    }
    k = u = bytes([9]) + bytes(31)
    for i in range(1, 1001):
        k, u = X25519PrivateKey.from_bytes(k).exchange(X25519PublicKey.from_bytes(u)), k
        if i in expected:
            assert k == h(expected[i]), f"after {i} iterations"


# RFC 7748 section 6.1 (Curve25519 Diffie-Hellman example).
ALICE_PRIVATE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PRIVATE = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


@pytest.mark.req("PRIM-06")
def test_rfc7748_6_1_diffie_hellman() -> None:
    alice = X25519PrivateKey.from_bytes(h(ALICE_PRIVATE))
    bob = X25519PrivateKey.from_bytes(h(BOB_PRIVATE))
    assert alice.public_key().to_bytes() == h(ALICE_PUBLIC)
    assert bob.public_key().to_bytes() == h(BOB_PUBLIC)
    assert alice.exchange(X25519PublicKey.from_bytes(h(BOB_PUBLIC))) == h(SHARED)
    assert bob.exchange(X25519PublicKey.from_bytes(h(ALICE_PUBLIC))) == h(SHARED)


# --- RFC 8032 (Ed25519) -----------------------------------------------------------------------

# RFC 8032 section 7.1: (SECRET KEY, PUBLIC KEY, MESSAGE, SIGNATURE).
RFC8032_7_1 = {
    "TEST 1": (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    "TEST 2": (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    "TEST 3": (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    # The MESSAGE of TEST SHA(abc) is the 64-byte SHA-512 of "abc", as printed in the RFC.
    "TEST SHA(abc)": (
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
}


@pytest.mark.req("PRIM-06")
@pytest.mark.parametrize(
    ("seed", "public", "message", "signature"), RFC8032_7_1.values(), ids=list(RFC8032_7_1)
)
def test_rfc8032_7_1_ed25519(seed: str, public: str, message: str, signature: str) -> None:
    key = SigningKey.from_seed(h(seed))
    assert key.verify_key.to_bytes() == h(public)
    assert key.sign(h(message)) == h(signature)
    assert VerifyKey.from_bytes(h(public)).verify(h(signature), h(message)) is None


@pytest.mark.req("PRIM-06")
def test_rfc8032_sha_abc_message_is_sha512_of_abc() -> None:
    assert RFC8032_7_1["TEST SHA(abc)"][2] == hashlib.sha512(b"abc").hexdigest()


# --- RFC 5869 (HKDF-SHA256) -------------------------------------------------------------------

# RFC 5869 appendix A.1 (test case 1) and A.2 (test case 2): (IKM, salt, info, L, PRK, OKM).
RFC5869 = {
    "A.1 case 1": (
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    "A.2 case 2": (
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
}


@pytest.mark.req("PRIM-06")
@pytest.mark.parametrize("vector", RFC5869.values(), ids=list(RFC5869))
def test_rfc5869_hkdf_sha256(vector: tuple[str, str, str, int, str, str]) -> None:
    ikm, salt, info, length, prk, okm = vector
    # The extract step is HMAC-SHA256(salt, IKM) (RFC 5869 section 2.2): checks our HMAC too.
    assert hmac_sha256(h(salt), h(ikm)) == h(prk)
    assert hkdf_sha256(h(ikm), salt=h(salt), info=h(info), length=length) == h(okm)


# RFC 5869 appendix A.3 (test case 3): zero-length salt and info.
RFC5869_A3_IKM = "0b" * 22
RFC5869_A3_PRK = "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"
RFC5869_A3_OKM = (
    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
)


@pytest.mark.req("PRIM-05", "PRIM-06")
def test_rfc5869_a3_empty_info_is_refused_by_the_wrapper() -> None:
    # Our wrapper refuses an empty info label (PRIM-05), so test case 3 cannot run through it.
    with pytest.raises(ValueError, match="info label"):
        hkdf_sha256(h(RFC5869_A3_IKM), salt=b"", info=b"", length=42)


@pytest.mark.req("PRIM-06")
def test_rfc5869_a3_vector_text_against_cryptography() -> None:
    # Confirms the hard-coded vector text itself, with cryptography's HKDF directly (not our
    # wrapper, which refuses empty info, above). An empty salt means HashLen zero bytes.
    assert hmac_sha256(bytes(32), h(RFC5869_A3_IKM)) == h(RFC5869_A3_PRK)
    okm = HKDF(algorithm=hashes.SHA256(), length=42, salt=b"", info=b"").derive(h(RFC5869_A3_IKM))
    assert okm == h(RFC5869_A3_OKM)


# --- RFC 8439 (ChaCha20-Poly1305) -------------------------------------------------------------

# RFC 8439 section 2.8.2 (example and test vector for AEAD_CHACHA20_POLY1305).
RFC8439_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
RFC8439_AAD = "50515253c0c1c2c3c4c5c6c7"
RFC8439_KEY = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
RFC8439_NONCE = "07000000" + "4041424344454647"  # constant || IV
RFC8439_CIPHERTEXT = (
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
)
RFC8439_TAG = "1ae10b594f09e26a7e902ecbd0600691"


@pytest.mark.req("PRIM-06")
def test_rfc8439_2_8_2_aead() -> None:
    sealed = aead.seal(h(RFC8439_KEY), h(RFC8439_NONCE), RFC8439_PLAINTEXT, h(RFC8439_AAD))
    assert sealed == h(RFC8439_CIPHERTEXT + RFC8439_TAG)
    assert aead.open_(h(RFC8439_KEY), h(RFC8439_NONCE), sealed, h(RFC8439_AAD)) == (
        RFC8439_PLAINTEXT
    )


# --- RFC 4231 (HMAC-SHA256, HMAC-SHA512) ------------------------------------------------------

_LONG_KEY = "aa" * 131
# RFC 4231 section 4: test case -> (Key, Data, HMAC-SHA-256, HMAC-SHA-512).
RFC4231 = {
    "4.2 case 1": (
        "0b" * 20,
        b"Hi There".hex(),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    ),
    "4.3 case 2": (
        b"Jefe".hex(),
        b"what do ya want for nothing?".hex(),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    ),
    "4.4 case 3": (
        "aa" * 20,
        "dd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
        "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
    ),
    "4.5 case 4": (
        bytes(range(0x01, 0x1A)).hex(),
        "cd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
        "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
    ),
    # Test case 5 (4.6) is truncated output: see test_rfc4231_4_6_truncation below.
    "4.7 case 6": (
        _LONG_KEY,
        b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
        "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
    ),
    "4.8 case 7": (
        _LONG_KEY,
        (
            b"This is a test using a larger than block-size key and a larger than block-size"
            b" data. The key needs to be hashed before being used by the HMAC algorithm."
        ).hex(),
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
        "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
    ),
}


@pytest.mark.req("PRIM-06")
@pytest.mark.parametrize(("key", "data", "sha256", "sha512"), RFC4231.values(), ids=list(RFC4231))
def test_rfc4231_hmac(key: str, data: str, sha256: str, sha512: str) -> None:
    assert hmac_sha256(h(key), h(data)) == h(sha256)
    assert hmac_sha512(h(key), h(data)) == h(sha512)


@pytest.mark.req("PRIM-06")
def test_rfc4231_4_6_truncation() -> None:
    # RFC 4231 section 4.6 (test case 5): output truncated to 128 bits.
    key, data = h("0c" * 20), b"Test With Truncation"
    assert hmac_sha256(key, data)[:16] == h("a3b6167473100ee06e0c796c2955552b")
    assert hmac_sha512(key, data)[:16] == h("415fad6271580a531d4179bc891d87a6")
