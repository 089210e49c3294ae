#ifndef UPLINK_CCRYPTO_SHIM_H
#define UPLINK_CCRYPTO_SHIM_H
// OpenSSL's libcrypto: HMAC-SHA256 for the IoT-Core signature and JWTs, and (for the emulator) key and
// certificate generation. Macros that Swift cannot import get typed static inline shims below.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/err.h>

// --- shims (append below; one per argument kind) ---

// IoTCoreEmulator: self-signed CA and server certificate generation.
#include <openssl/ec.h>
// EVP_EC_gen is a macro over the variadic EVP_PKEY_Q_keygen.
static inline EVP_PKEY *uplink_emulator_ec_keygen(const char *curve) { return EVP_EC_gen(curve); }
// BIO_get_mem_data is a macro over BIO_ctrl that casts its out-pointer.
static inline long uplink_emulator_bio_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }
// X509V3_set_ctx_nodb is a statement macro.
static inline void uplink_emulator_x509v3_set_ctx_nodb(X509V3_CTX *ctx) { X509V3_set_ctx_nodb(ctx); }
// MBSTRING_ASC is an expression macro Swift does not import.
static inline int uplink_emulator_mbstring_asc(void) { return MBSTRING_ASC; }

#endif
