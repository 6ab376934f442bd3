/*-------------------------------------------------------------------------
 *
 * hmac.c
 *	  SHA-256 and HMAC-SHA256 as lower-case hex, on PostgreSQL's
 *	  common/cryptohash.h and common/hmac.h: the items digests and the
 *	  request signers (iSales C2, webhook).
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "utils/builtins.h"
#include "utils/resowner.h"

/*
 * ccp_hmac_sha256_hex computes HMAC-SHA256 of msg with key and writes it as lower-case
 * hex text, NUL-terminated, into hex (PG_SHA256_DIGEST_STRING_LENGTH bytes).
 *
 * PostgreSQL's HMAC contexts are tracked by the current resource owner; a
 * caller running outside a transaction (the worker between transactions)
 * has none, so a short-lived one is made for the computation.
 */
void
ccp_hmac_sha256_hex(const char *key, size_t keylen, const char *msg, size_t msglen,
			char *hex)
{
	ResourceOwner saved_owner = CurrentResourceOwner;
	ResourceOwner volatile own_owner = NULL;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

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
			pg_hmac_final(ctx, digest, sizeof(digest)) < 0)
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
