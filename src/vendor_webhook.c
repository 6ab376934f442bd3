/*-------------------------------------------------------------------------
 *
 * vendor_webhook.c
 *	  The signed webhook (vendor "webhook"): any other erasure endpoint,
 *	  an in-house system or a small adapter in front of a platform.
 *
 * One operation, "erase": POST {url} with {"operation": "erase", "items":
 * [...]}.  Every request carries
 *	 Idempotency-Key: the batch key, the same for every automatic attempt
 *		of a batch, a new one for each new attempt generation (worker.c);
 *	 X-Ccpurge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." +
 *		body under the mapping's signing_secret>.
 * A 2xx with an empty body (no bytes at all) means every item is erased.
 * A 2xx whose body is exactly one JSON object with "results": [{"item",
 * "ok", "message"}] gives each item its own outcome, and an item without a
 * result is not erased.  Any other 2xx body (text that is not one JSON
 * value, such as an HTML page or JSON followed by a proxy's footer, or a
 * JSON value of another shape) is a permanent failure that says what was
 * wrong: it is never an erasure.  408, 429 and 5xx are transient, other
 * statuses permanent.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <time.h>

#include <cjson/cJSON.h>

#include "common/sha2.h"
#include "mb/pg_wchar.h"

#define WEBHOOK_MAX_BATCH		10000
#define WEBHOOK_DEFAULT_BATCH	1000
#define WEBHOOK_MAX_ITEM_BYTES	1024
#define WEBHOOK_MIN_SECRET		16

/*
 * Room in an answer for one item's result besides the item itself: the
 * "ok" and "message" members (a message of up to about 2 kB) and the
 * punctuation.  The item is counted six times over, as a receiver may
 * escape every byte of it as \uXXXX.
 */
#define WEBHOOK_RESULT_BYTES	2048
#define WEBHOOK_ESCAPE_FACTOR	6

/* An item of the chunk and its position, for matching per-item results. */
typedef struct WebhookItem
{
	const char *item;
	int			pos;
} WebhookItem;

/*
 * webhook_validate_item accepts a non-empty, printable item of at most
 * WEBHOOK_MAX_ITEM_BYTES bytes (the contract counts bytes, not
 * characters).
 */
static void
webhook_validate_item(const CcpOpDef *def, const char *item)
{
	ccp_validate_nonempty_item(def, item);
	if (strlen(item) > WEBHOOK_MAX_ITEM_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("item is too long for operation \"%s\"", def->name),
				 errdetail("The item has %zu bytes; webhook items may have at most %d.",
						   strlen(item), WEBHOOK_MAX_ITEM_BYTES)));
}

/*
 * webhook_check_mapping refuses a signing secret too short to sign with:
 * the contract asks for at least WEBHOOK_MIN_SECRET bytes.
 */
static void
webhook_check_mapping(const CcpServer *srv)
{
	if (strlen(srv->cred[0]) < WEBHOOK_MIN_SECRET)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("option \"signing_secret\" of the user mapping for server \"%s\" is too short",
						srv->servername),
				 errdetail("A webhook signing secret must have at least %d bytes.",
						   WEBHOOK_MIN_SECRET)));
}

/*
 * webhook_build_erase builds one signed erase request for the chunk.  The
 * signature covers the exact body bytes sent, in UTF-8.
 */
static void
webhook_build_erase(const CcpServer *srv, const CcpChunk *chunk,
					CcpHttpRequest *req)
{
	cJSON	   *root = cJSON_CreateObject();
	cJSON	   *arr = cJSON_AddArrayToObject(root, "items");
	char		t[32];
	char		sig[PG_SHA256_DIGEST_STRING_LENGTH];
	char	   *signed_text;

	cJSON_AddStringToObject(root, "operation", "erase");
	for (int i = 0; i < chunk->nitems; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(chunk->items[i]));

	memset(req, 0, sizeof(*req));
	req->method = "POST";
	req->url = pstrdup(srv->url);
	ccp_set_json_body(req, root);

	/*
	 * The answer may name every item with a message: the usual limit plus
	 * room for each item's result, so that the largest batch a server may
	 * send (10000 items of 1024 bytes) always gets its answer read.
	 */
	req->max_response = CCP_MAX_RESPONSE_BYTES;
	for (int i = 0; i < chunk->nitems; i++)
		req->max_response += WEBHOOK_ESCAPE_FACTOR * strlen(chunk->items[i]) +
			WEBHOOK_RESULT_BYTES;

	snprintf(t, sizeof(t), "%lld", (long long) time(NULL));
	signed_text = psprintf("%s.%s", t, req->body);
	ccp_hmac_sha256_hex(srv->cred[0], strlen(srv->cred[0]),
						signed_text, strlen(signed_text), sig);
	ccp_add_header(req, "Content-Type", "application/json");
	ccp_add_header(req, "Idempotency-Key", chunk->batch_key);
	ccp_add_header(req, "X-Ccpurge-Signature", psprintf("t=%s,v1=%s", t, sig));
}

/* webhook_item_cmp orders WebhookItems by item, for qsort and bsearch. */
static int
webhook_item_cmp(const void *a, const void *b)
{
	return strcmp(((const WebhookItem *) a)->item,
				  ((const WebhookItem *) b)->item);
}

/*
 * webhook_read_results fills out's per-item outcomes from a "results"
 * array.  Results for items the chunk did not carry are ignored; items
 * without a result stay not ok.  Result items are compared in UTF-8 as
 * sent, so the chunk's items are converted for the look-up.
 */
static void
webhook_read_results(const CcpChunk *chunk, cJSON *results, CcpOutcome *out)
{
	WebhookItem *sorted = palloc(sizeof(WebhookItem) * Max(chunk->nitems, 1));
	cJSON	   *r;
	int			nok = 0;

	for (int i = 0; i < chunk->nitems; i++)
	{
		sorted[i].item = pg_server_to_any(chunk->items[i],
										  strlen(chunk->items[i]), PG_UTF8);
		sorted[i].pos = i;
	}
	qsort(sorted, chunk->nitems, sizeof(WebhookItem), webhook_item_cmp);

	out->item_ok = palloc0(sizeof(bool) * Max(chunk->nitems, 1));
	out->item_message = palloc0(sizeof(char *) * Max(chunk->nitems, 1));
	for (int i = 0; i < chunk->nitems; i++)
		out->item_message[i] = pstrdup("the receiver gave no result for this item");

	cJSON_ArrayForEach(r, results)
	{
		cJSON	   *item = cJSON_GetObjectItemCaseSensitive(r, "item");
		cJSON	   *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
		char	   *msg = ccp_json_get_string(r, "message");
		WebhookItem key;
		WebhookItem *found;

		if (!cJSON_IsString(item) || item->valuestring == NULL)
			continue;
		key.item = item->valuestring;
		found = bsearch(&key, sorted, chunk->nitems, sizeof(WebhookItem),
						webhook_item_cmp);
		if (found == NULL)
			continue;
		out->item_ok[found->pos] = cJSON_IsTrue(ok);
		out->item_message[found->pos] = msg ? msg :
			pstrdup(cJSON_IsTrue(ok) ? "erased" : "the receiver did not erase it");
	}
	for (int i = 0; i < chunk->nitems; i++)
		nok += out->item_ok[i] ? 1 : 0;
	if (chunk->nitems == 1)
		out->message = psprintf("%d of 1 item erased", nok);
	else
		out->message = psprintf("%d of %d items erased", nok, chunk->nitems);
	pfree(sorted);
}

/*
 * webhook_parse_erase reads the receiver's answer; see the file header for
 * the rules.
 */
static void
webhook_parse_erase(const CcpServer *srv, const CcpChunk *chunk,
					const CcpHttpResult *res, CcpOutcome *out)
{
	int			status = res->status;
	cJSON	   *root;

	out->retry = CCP_FINAL;
	if (status < 200 || status > 299)
	{
		out->ok = false;
		if (status == 408 || status == 429 || status >= 500)
		{
			out->retry = CCP_RETRY_TRANSIENT;
			out->message = psprintf("receiver unavailable (HTTP %d)", status);
		}
		else if (status == 401 || status == 403)
			out->message = psprintf("receiver refused the signature (HTTP %d); check the signing_secret of the user mapping and the clock of both hosts",
									status);
		else
			out->message = psprintf("receiver refused the request (HTTP %d)", status);
		return;
	}

	/* only an empty body says "all erased"; white space is not empty */
	if (res->body_len == 0)
	{
		out->ok = true;
		out->message = pstrdup("erased");
		return;
	}

	root = ccp_json_parse_body(res);
	PG_TRY();
	{
		cJSON	   *results = cJSON_IsObject(root) ?
			cJSON_GetObjectItemCaseSensitive(root, "results") : NULL;

		if (cJSON_IsArray(results))
		{
			out->ok = true;
			webhook_read_results(chunk, results, out);
		}
		else
		{
			out->ok = false;
			if (root == NULL)
				out->message = psprintf("the receiver's answer (HTTP %d) is neither empty nor one JSON value, so nothing is known to be erased",
										status);
			else
				out->message = psprintf("the receiver's answer (HTTP %d) is JSON without a \"results\" array, so nothing is known to be erased",
										status);
		}
	}
	PG_FINALLY();
	{
		cJSON_Delete(root);
	}
	PG_END_TRY();
}

static const CcpOpDef webhook_ops[] = {
	{
		.name = "erase",
		.items_arg = "items",
		.max_batch = WEBHOOK_MAX_BATCH,
		.max_item_len = 0,
		.validate_item = webhook_validate_item,
		.build = webhook_build_erase,
		.parse = webhook_parse_erase,
	},
};

const CcpVendor ccp_vendor_webhook = {
	.name = "webhook",
	.ncreds = 1,
	.cred_names = {"signing_secret"},
	.account_cred = -1,
	.max_batch = WEBHOOK_MAX_BATCH,
	.default_batch = WEBHOOK_DEFAULT_BATCH,
	.default_rate_limit = NULL,
	.default_max_inflight = 0,
	.has_token_ttl = false,
	.build_token_request = NULL,
	.parse_token = NULL,
	.check_mapping = webhook_check_mapping,
	.ops = webhook_ops,
	.nops = lengthof(webhook_ops),
};
