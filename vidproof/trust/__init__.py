"""Trust in device keys: key algorithms, X.509 device certificates and their CA,
revocation lists, and hardware (PKCS#11) keys.

- :mod:`.keytypes`: the signature algorithms (Ed25519, ECDSA P-256), key ids, PEM.
- :mod:`.certs` and :mod:`.crl`: certificate path validation *as of a given time*, and
  revocation with dates.
- :mod:`.policy`: what a verifier trusts (a bare public key, or a CA with its CRLs),
  passed in explicitly; pure, no clock.
- :mod:`.ca`: the operator's certificate authority (``vidproof ca``, ``device enroll``).
- :mod:`.pkcs11`: signing with a key that never leaves a PKCS#11 token.
"""
