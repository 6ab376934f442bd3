/*-------------------------------------------------------------------------
 *
 * digest.c
 *	  Keyed digests of items: HMAC-SHA256 under a secret key, so that a
 *	  stored digest of one phone number cannot be reversed by trying every
 *	  number.
 *
 * The keys are rows of ccpurge.digest_key (key_id, key, created_at),
 * readable by the extension's owner only.  The newest is the current key;
 * older ones stay for look-ups (ccpurge_rotate_digest_key adds a key).  A
 * key's id is taken from the SHA-256 of the key itself, so that a dump
 * restored into a database whose CREATE EXTENSION made a key of its own
 * keeps both without a clash.
 *
 * Besides the set digest of a request's items (ccp_digest_items), each
 * item has its own HMAC: the item_hmac of its receipts (receipt.c), and
 * what ccpurge.queue keeps of a done or canceled item instead of its text
 * (ccpurge.forget_items).
 *
 * Each process caches the keys.  A rotation bumps a counter in shared
 * memory when it commits, and a process loads the keys again, inside a
 * transaction, when the counter or the table has changed; outside a
 * transaction (the worker between its transactions) the cached keys are
 * used as they are.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#define CCP_KEY_BYTES	32

/* One digest key, as cached. */
typedef struct CcpDigestKey
{
	int			key_id;
	uint8		key[CCP_KEY_BYTES];
} CcpDigestKey;

static CcpDigestKey *ccp_keys = NULL;	/* newest first, in TopMemoryContext */
static int	ccp_nkeys = 0;
static uint64 ccp_keys_generation = 0;
static Oid	ccp_keys_relid = InvalidOid;
static bool ccp_rotated = false;	/* this transaction added a key */
static bool ccp_digest_callback = false;

/* The statements on ccpurge.digest_key, prepared once. */
static CcpStmt ccp_digest_keys_stmt = {
	"SELECT key_id, key FROM ccpurge.digest_key"
	" ORDER BY created_at DESC, key_id DESC",
	0, {InvalidOid}
};

static CcpStmt ccp_digest_add_stmt = {
	"INSERT INTO ccpurge.digest_key (key_id, key) VALUES ($1, $2)",
	2, {INT4OID, BYTEAOID}
};

PG_FUNCTION_INFO_V1(ccpurge_items_digest);
PG_FUNCTION_INFO_V1(ccpurge_rotate_digest_key);
PG_FUNCTION_INFO_V1(ccpurge_forget_items);

/*
 * ccp_digest_table returns the oid of ccpurge.digest_key and sets *owner,
 * or returns InvalidOid when it does not exist (an installation older
 * than 1.2, or no extension).  Needs a transaction.
 */
static Oid
ccp_digest_table(Oid *owner)
{
	Oid			relid;

	return ccp_ccpurge_table("digest_key", &relid, owner) ? relid : InvalidOid;
}

/*
 * ccp_digest_load reads every key, newest first, into the cache.  Needs a
 * transaction; connects to SPI itself.
 */
static void
ccp_digest_load(Oid relid, Oid owner)
{
	uint64		generation = pg_atomic_read_u64(&ccp_shared->digest_generation);
	CcpDigestKey *keys;
	int			n = 0;
	uint64		nrows;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nrows = ccp_stmt_exec_as(owner, &ccp_digest_keys_stmt, NULL, NULL,
							 SPI_OK_SELECT);
	keys = MemoryContextAllocZero(TopMemoryContext,
								  sizeof(CcpDigestKey) * Max(nrows, 1));
	for (uint64 i = 0; i < nrows; i++)
	{
		bool		isnull;
		bytea	   *key;

		keys[n].key_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));
		key = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull || VARSIZE_ANY_EXHDR(key) != CCP_KEY_BYTES)
			continue;
		memcpy(keys[n].key, VARDATA_ANY(key), CCP_KEY_BYTES);
		n++;
	}
	SPI_finish();

	if (ccp_keys != NULL)
	{
		explicit_bzero(ccp_keys, sizeof(CcpDigestKey) * Max(ccp_nkeys, 1));
		pfree(ccp_keys);
	}
	ccp_keys = keys;
	ccp_nkeys = n;
	ccp_keys_generation = generation;
	ccp_keys_relid = relid;
}

/*
 * ccp_digest_current brings the cached keys up to date when a transaction
 * is open and they may have changed (another process rotated, or the
 * extension was created anew).  Returns the current key, or NULL when
 * there is none (no key table, or nothing cached outside a transaction).
 */
static const CcpDigestKey *
ccp_digest_current(void)
{
	if (IsTransactionState() && ccp_shared != NULL)
	{
		Oid			owner = InvalidOid;
		Oid			relid = ccp_digest_table(&owner);

		if (!OidIsValid(relid))
		{
			ccp_nkeys = 0;
			ccp_keys_relid = InvalidOid;
			return NULL;
		}
		if (relid != ccp_keys_relid || ccp_nkeys == 0 ||
			pg_atomic_read_u64(&ccp_shared->digest_generation) != ccp_keys_generation)
			ccp_digest_load(relid, owner);
	}
	return ccp_nkeys > 0 ? &ccp_keys[0] : NULL;
}

/*
 * ccp_digest_refresh loads the keys if needed; the worker calls it in each
 * claim transaction, so that the requests it logs between transactions
 * are digested under the current key.
 */
void
ccp_digest_refresh(void)
{
	(void) ccp_digest_current();
}

/* ccp_digest_cmp orders C strings bytewise, for qsort_interruptible. */
static int
ccp_digest_cmp(const void *a, const void *b, void *arg)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * ccp_digest_items computes the set digest of n items under the current
 * key into digest (PG_SHA256_DIGEST_LENGTH bytes) and sets *key_id: the
 * HMAC-SHA256 of the items sorted bytewise, each followed by a newline, so
 * that the digest does not depend on their order.  Returns false, with
 * nothing computed, when there is no key.
 */
bool
ccp_digest_items(char **items, int n, uint8 *digest, int *key_id)
{
	const CcpDigestKey *key = ccp_digest_current();
	char	  **sorted;
	StringInfoData buf;

	if (key == NULL)
		return false;
	sorted = palloc(sizeof(char *) * Max(n, 1));
	memcpy(sorted, items, sizeof(char *) * n);
	qsort_interruptible(sorted, n, sizeof(char *), ccp_digest_cmp, NULL);
	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		appendStringInfoString(&buf, sorted[i]);
		appendStringInfoChar(&buf, '\n');
	}
	ccp_hmac_sha256((const char *) key->key, CCP_KEY_BYTES, buf.data, buf.len,
					digest);
	*key_id = key->key_id;
	pfree(buf.data);
	pfree(sorted);
	return true;
}

/*
 * ccp_digest_value returns, palloc'd, what the request log's scope holds
 * instead of a value that selects people: "hmac:<key_id>:<hex HMAC-SHA256
 * of the value>" under the current key, or "hmac:none" when there is no
 * key (an installation before the update).
 */
char *
ccp_digest_value(const char *value)
{
	const CcpDigestKey *key = ccp_digest_current();
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		hex[PG_SHA256_DIGEST_STRING_LENGTH];

	if (key == NULL)
		return pstrdup("hmac:none");
	ccp_hmac_sha256((const char *) key->key, CCP_KEY_BYTES, value,
					strlen(value), digest);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	return psprintf("hmac:%d:%s", key->key_id, hex);
}

/*
 * ccpurge_items_digest(items text[]) gives the set digest the request log
 * stores for a list of items, under the current key, so that a given list
 * can be matched against the log.  NULL elements are not allowed, as they
 * are never sent.
 */
Datum
ccpurge_items_digest(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **items;
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	int			key_id;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	items = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("items must not contain NULL")));
		items[i] = TextDatumGetCString(elems[i]);
	}
	if (!ccp_digest_items(items, n, (uint8 *) VARDATA(result), &key_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ccpurge has no digest key in this database"),
				 errhint("Update the extension with ALTER EXTENSION ccpurge UPDATE.")));
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	PG_RETURN_BYTEA_P(result);
}

/*
 * ccp_digest_xact_callback tells every process, when a transaction that
 * added a key commits, to load the keys again.
 */
static void
ccp_digest_xact_callback(XactEvent event, void *arg)
{
	if (!ccp_rotated)
		return;
	if (event == XACT_EVENT_COMMIT && ccp_shared != NULL)
		pg_atomic_fetch_add_u64(&ccp_shared->digest_generation, 1);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		ccp_rotated = false;
}

/*
 * ccpurge_rotate_digest_key() adds a new key of CCP_KEY_BYTES strong
 * random bytes, which becomes the current one, and returns its key_id;
 * older keys stay for look-ups.  Runs as the table's owner.
 */
Datum
ccpurge_rotate_digest_key(PG_FUNCTION_ARGS)
{
	uint8		key[CCP_KEY_BYTES];
	uint8		hash[PG_SHA256_DIGEST_LENGTH];
	int32		key_id;
	Oid			owner = InvalidOid;
	Oid			relid;
	bytea	   *keyval = palloc(VARHDRSZ + CCP_KEY_BYTES);
	Datum		values[2];

	ccp_require_writable();
	relid = ccp_digest_table(&owner);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the ccpurge digest key table does not exist in this database")));
	if (!pg_strong_random(key, sizeof(key)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random digest key")));
	/* the id is the key's own: keys of two installations never clash */
	{
		pg_cryptohash_ctx *ctx = ccp_sha256_begin();
		char	   *hex;

		ccp_sha256_add(ctx, (const char *) key, sizeof(key));
		hex = ccp_sha256_end(ctx);
		hex_decode(hex, 8, (char *) hash);
		key_id = (int32) ((((uint32) hash[0] << 24) | ((uint32) hash[1] << 16) |
						   ((uint32) hash[2] << 8) | hash[3]) & 0x7FFFFFFF);
	}
	memcpy(VARDATA(keyval), key, sizeof(key));
	SET_VARSIZE(keyval, VARHDRSZ + CCP_KEY_BYTES);
	explicit_bzero(key, sizeof(key));
	values[0] = Int32GetDatum(key_id);
	values[1] = PointerGetDatum(keyval);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) ccp_stmt_exec_as(owner, &ccp_digest_add_stmt, values, NULL,
							SPI_OK_INSERT);
	SPI_finish();
	explicit_bzero(VARDATA(keyval), CCP_KEY_BYTES);

	if (!ccp_digest_callback)
	{
		RegisterXactCallback(ccp_digest_xact_callback, NULL);
		ccp_digest_callback = true;
	}
	ccp_rotated = true;
	/* this process sees its own key at once */
	ccp_nkeys = 0;
	PG_RETURN_INT32(key_id);
}

/*
 * ccp_digest_each computes each of the n items' own HMAC under the current
 * key into out (n * PG_SHA256_DIGEST_LENGTH bytes, in order) and sets
 * *key_id: the item_hmac of its receipts.  Returns false, with nothing
 * computed, when there is no key.  Raises no error outside a transaction.
 */
bool
ccp_digest_each(char *const *items, int n, uint8 *out, int *key_id)
{
	const CcpDigestKey *key = ccp_digest_current();

	if (key == NULL)
		return false;
	ccp_hmac_sha256_many(key->key, CCP_KEY_BYTES, items, n, out);
	*key_id = key->key_id;
	return true;
}

/*
 * ccp_digest_under_every_key computes item's HMAC under every key, newest
 * first, into *hmacs (palloc'd, PG_SHA256_DIGEST_LENGTH bytes each) and
 * *key_ids, and returns how many: the item_hmac values its receipts may
 * hold.  Needs a transaction.
 */
int
ccp_digest_under_every_key(const char *item, uint8 **hmacs, int **key_ids)
{
	char	   *msgs[1] = {unconstify(char *, item)};

	(void) ccp_digest_current();
	*hmacs = palloc(PG_SHA256_DIGEST_LENGTH * Max(ccp_nkeys, 1));
	*key_ids = palloc(sizeof(int) * Max(ccp_nkeys, 1));
	for (int k = 0; k < ccp_nkeys; k++)
	{
		ccp_hmac_sha256_many(ccp_keys[k].key, CCP_KEY_BYTES, msgs, 1,
							 *hmacs + k * PG_SHA256_DIGEST_LENGTH);
		(*key_ids)[k] = ccp_keys[k].key_id;
	}
	return ccp_nkeys;
}

/*
 * ccp_digest_text returns, palloc'd, what ccpurge.queue keeps of a done or
 * canceled item instead of its clear text: "hmac:<key_id>:<hex>", the
 * item's own HMAC under key_id (the item_hmac of its receipts), from
 * hmac (PG_SHA256_DIGEST_LENGTH bytes).
 */
char *
ccp_digest_text(const uint8 *hmac, int key_id)
{
	char		hex[PG_SHA256_DIGEST_STRING_LENGTH];

	hex_encode((const char *) hmac, PG_SHA256_DIGEST_LENGTH, hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	return psprintf("hmac:%d:%s", key_id, hex);
}

/*
 * ccp_digest_is_text tells whether s is a digest as ccp_digest_text writes
 * it: "hmac:", a key id, ":" and 64 lower-case hex digits.
 */
static bool
ccp_digest_is_text(const char *s)
{
	const char *p = s + 5;
	int			hex = 0;

	if (strncmp(s, "hmac:", 5) != 0 || !isdigit((unsigned char) *p))
		return false;
	while (isdigit((unsigned char) *p))
		p++;
	if (*p++ != ':')
		return false;
	for (; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++)
		hex++;
	return *p == '\0' && hex == PG_SHA256_DIGEST_LENGTH * 2;
}

/*
 * ccpurge.forget_items(items text[]) returns the items with each clear
 * text replaced by its digest (ccp_digest_text) under the current key;
 * elements that are digests already stay.  The queue calls it when its
 * rows become done or canceled, so that no erased item stays in clear
 * text.  Without a key it leaves "hmac:none" in place of each item: the
 * clear text goes all the same.
 */
Datum
ccpurge_forget_items(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **items;
	uint8	   *hmacs;
	int			key_id = 0;
	bool		keyed;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	items = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		items[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	hmacs = palloc(PG_SHA256_DIGEST_LENGTH * Max(n, 1));
	keyed = ccp_digest_each(items, n, hmacs, &key_id);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i] || ccp_digest_is_text(items[i]))
			continue;
		elems[i] = CStringGetTextDatum(keyed ?
									   ccp_digest_text(hmacs + i * PG_SHA256_DIGEST_LENGTH, key_id) :
									   "hmac:none");
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, nulls, ARR_NDIM(arr),
											 ARR_DIMS(arr), ARR_LBOUND(arr),
											 TEXTOID, -1, false, TYPALIGN_INT));
}
