/*-------------------------------------------------------------------------
 *
 * hmac.c
 *	  SHA-256 and HMAC-SHA256, on PostgreSQL's common/cryptohash.h and
 *	  common/hmac.h: the keyed item digests (digest.c) and the request
 *	  signers (iSales C2, webhook); and many HMACs under one key on
 *	  OpenSSL's SHA-256, for the receipts of every item (receipt.c).
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "utils/builtins.h"
#include "utils/resowner.h"

/* the low-level SHA-256 interface: a state copied per message (ccp_hmac_sha256_many) */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

/*
 * ccp_hmac_sha256 computes HMAC-SHA256 of msg with key into digest
 * (PG_SHA256_DIGEST_LENGTH bytes).
 *
 * PostgreSQL's HMAC contexts are tracked by the current resource owner; a
 * caller running outside a transaction (the worker between transactions)
 * has none, so a short-lived one is made for the computation.
 */
void
ccp_hmac_sha256(const char *key, size_t keylen, const char *msg, size_t msglen,
				uint8 *digest)
{
	ResourceOwner saved_owner = CurrentResourceOwner;
	ResourceOwner volatile own_owner = NULL;

	if (saved_owner == NULL)
	{
		own_owner = ResourceOwnerCreate(NULL, "ccpurge HMAC");
		CurrentResourceOwner = own_owner;
	}

	PG_TRY();
	{
		pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

		if (ctx == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));

		if (pg_hmac_init(ctx, (const uint8 *) key, keylen) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) msg, msglen) < 0 ||
			pg_hmac_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
		{
			char	   *reason = pstrdup(pg_hmac_error(ctx));

			pg_hmac_free(ctx);
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compute an HMAC"),
					 errdetail("HMAC-SHA256 failed: %s.", reason)));
		}
		pg_hmac_free(ctx);
	}
	PG_FINALLY();
	{
		if (own_owner != NULL)
		{
			CurrentResourceOwner = saved_owner;
			ResourceOwnerRelease(own_owner, RESOURCE_RELEASE_BEFORE_LOCKS,
								 false, false);
			ResourceOwnerRelease(own_owner, RESOURCE_RELEASE_LOCKS,
								 false, false);
			ResourceOwnerRelease(own_owner, RESOURCE_RELEASE_AFTER_LOCKS,
								 false, false);
			ResourceOwnerDelete(own_owner);
		}
	}
	PG_END_TRY();
}

/*
 * ccp_hmac_sha256_hex computes HMAC-SHA256 of msg with key and writes it as
 * lower-case hex text, NUL-terminated, into hex
 * (PG_SHA256_DIGEST_STRING_LENGTH bytes).
 */
void
ccp_hmac_sha256_hex(const char *key, size_t keylen, const char *msg,
					size_t msglen, char *hex)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	ccp_hmac_sha256(key, keylen, msg, msglen, digest);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	explicit_bzero(digest, sizeof(digest));
}

/*
 * ccp_sha256_begin starts a SHA-256 computation; feed it with
 * ccp_sha256_add and finish it with ccp_sha256_end.  The context is tracked
 * by the current resource owner, which must exist, so an error in between
 * does not leak it.
 */
pg_cryptohash_ctx *
ccp_sha256_begin(void)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (pg_cryptohash_init(ctx) < 0)
	{
		char	   *reason = pstrdup(pg_cryptohash_error(ctx));

		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a digest"),
				 errdetail("SHA-256 failed: %s.", reason)));
	}
	return ctx;
}

/* ccp_sha256_add feeds len bytes of data to a computation. */
void
ccp_sha256_add(pg_cryptohash_ctx *ctx, const char *data, size_t len)
{
	if (pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
	{
		pg_cryptohash_free(ctx);
		elog(ERROR, "could not update a SHA-256 digest");
	}
}

/*
 * ccp_sha256_end finishes a computation, frees its context, and returns
 * the digest as palloc'd lower-case hex.
 */
char *
ccp_sha256_end(pg_cryptohash_ctx *ctx)
{
	uint8		hash[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_STRING_LENGTH);

	if (pg_cryptohash_final(ctx, hash, sizeof(hash)) < 0)
	{
		pg_cryptohash_free(ctx);
		elog(ERROR, "could not finish a SHA-256 digest");
	}
	pg_cryptohash_free(ctx);
	hex_encode((const char *) hash, sizeof(hash), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	return hex;
}

/*
 * ccp_hmac_sha256_many computes HMAC-SHA256 under one key of each of the n
 * NUL-terminated msgs into out (n * PG_SHA256_DIGEST_LENGTH bytes, in
 * order).  The key's inner and outer pads are hashed once and their
 * SHA-256 states copied for every message, so that a message of under 56
 * bytes costs two compressions: the receipts of a million items are made
 * in a fraction of a second.  keylen is at most 64 bytes (SHA-256's block;
 * ccpurge's digest keys are 32).  Raises no error and needs no resource
 * owner, so the worker may call it between transactions.
 */
void
ccp_hmac_sha256_many(const uint8 *key, size_t keylen, char *const *msgs,
					 int n, uint8 *out)
{
	uint8		pad[SHA256_CBLOCK];
	SHA256_CTX	inner;
	SHA256_CTX	outer;

	Assert(keylen <= SHA256_CBLOCK);
	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < keylen; i++)
		pad[i] ^= key[i];
	SHA256_Init(&inner);
	SHA256_Update(&inner, pad, sizeof(pad));
	memset(pad, 0x5c, sizeof(pad));
	for (size_t i = 0; i < keylen; i++)
		pad[i] ^= key[i];
	SHA256_Init(&outer);
	SHA256_Update(&outer, pad, sizeof(pad));
	explicit_bzero(pad, sizeof(pad));

	for (int i = 0; i < n; i++)
	{
		SHA256_CTX	c = inner;
		uint8	   *d = out + (Size) i * PG_SHA256_DIGEST_LENGTH;

		SHA256_Update(&c, msgs[i], strlen(msgs[i]));
		SHA256_Final(d, &c);
		c = outer;
		SHA256_Update(&c, d, PG_SHA256_DIGEST_LENGTH);
		SHA256_Final(d, &c);
	}
	explicit_bzero(&inner, sizeof(inner));
	explicit_bzero(&outer, sizeof(outer));
}
