/*-------------------------------------------------------------------------
 *
 * vendor.c
 *	  The vendor table and the small helpers every vendor file shares.
 *
 * Adding a vendor means writing one vendor_<name>.c that defines a
 * CcpVendor and adding it to ccp_vendors[] below.  Everything else (option
 * validation, token cache, limiter, SQL functions, queue) finds vendors and
 * their operations through this table.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <cjson/cJSON.h>

#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "parser/scansup.h"
#include "utils/json.h"

static const CcpVendor *const ccp_vendors[] = {
	&ccp_vendor_cec,
	&ccp_vendor_isales,
	&ccp_vendor_ozonetel,
	&ccp_vendor_webhook,
};

#define CCP_NVENDORS lengthof(ccp_vendors)

/* ccp_vendor_by_name returns the vendor called name, or NULL. */
const CcpVendor *
ccp_vendor_by_name(const char *name)
{
	for (int i = 0; i < CCP_NVENDORS; i++)
	{
		if (strcmp(ccp_vendors[i]->name, name) == 0)
			return ccp_vendors[i];
	}
	return NULL;
}

/* ccp_vendor_count returns the number of known vendors. */
int
ccp_vendor_count(void)
{
	return CCP_NVENDORS;
}

/* ccp_vendor_at returns vendor number i, 0 <= i < ccp_vendor_count(). */
const CcpVendor *
ccp_vendor_at(int i)
{
	Assert(i >= 0 && i < CCP_NVENDORS);
	return ccp_vendors[i];
}

/*
 * ccp_op_by_name returns the operation called name (as ccpurge_enqueue
 * spells it) and its vendor, or NULL.
 */
const CcpOpDef *
ccp_op_by_name(const char *name, const CcpVendor **vendor)
{
	for (int i = 0; i < CCP_NVENDORS; i++)
	{
		for (int j = 0; j < ccp_vendors[i]->nops; j++)
		{
			if (strcmp(ccp_vendors[i]->ops[j].name, name) == 0)
			{
				if (vendor)
					*vendor = ccp_vendors[i];
				return &ccp_vendors[i]->ops[j];
			}
		}
	}
	return NULL;
}

/*
 * ccp_validate_nonempty_item is the validator for items the vendor
 * constrains only loosely: not empty, not blank, no control characters
 * (both as ccp_text_problem judges them, in all of Unicode), and within
 * the operation's max_item_len characters.
 */
void
ccp_validate_nonempty_item(const CcpOpDef *def, const char *item)
{
	int			len = strlen(item);
	CcpTextProblem problem = ccp_text_problem(item, len);

	if (problem == CCP_TEXT_CONTROL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid item for operation \"%s\": contains a control character",
						def->name),
				 errdetail("Items are sent to the vendor as JSON strings and must be printable text.")));
	if (problem == CCP_TEXT_BLANK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items for operation \"%s\" must not be empty", def->name),
				 errdetail("An empty or blank item names nobody at the vendor.")));
	/* bytes bound characters, so most items need no character count */
	if (def->max_item_len > 0 && len > def->max_item_len &&
		pg_mbstrlen(item) > def->max_item_len)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("item \"%s\" is too long for operation \"%s\"", item, def->name),
				 errdetail("The vendor accepts at most %d characters.",
						   def->max_item_len)));
}

/*
 * ccp_vendor_text returns a palloc'd copy of text a vendor sent that is
 * safe to store: control characters become spaces, bytes that are not
 * valid UTF-8 become "?", and so does non-ASCII text when the database
 * encoding is neither UTF8 nor SQL_ASCII (rows must survive a dump).
 */
char *
ccp_vendor_text(const char *s)
{
	StringInfoData buf;
	int			dbenc = GetDatabaseEncoding();
	bool		keep_utf8 = (dbenc == PG_UTF8 || dbenc == PG_SQL_ASCII);
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + strlen(s);

	initStringInfo(&buf);
	while (p < end)
	{
		if (*p < 0x80)
		{
			appendStringInfoChar(&buf, (*p < 0x20 || *p == 0x7f) ? ' ' : (char) *p);
			p++;
		}
		else
		{
			int			l = pg_utf_mblen(p);

			if (l <= end - p && pg_utf8_islegal(p, l) && keep_utf8)
				appendBinaryStringInfo(&buf, (const char *) p, l);
			else
				appendStringInfoChar(&buf, '?');
			p += (l <= end - p && pg_utf8_islegal(p, l)) ? l : 1;
		}
	}
	return buf.data;
}

/*
 * ccp_json_parse_body parses an HTTP answer's body, which must be exactly
 * one JSON value with nothing but white space after it: an answer with
 * trailing text (a proxy's error page glued to it, a cut-off second value)
 * is not the vendor's answer.  Returns the cJSON tree, which the caller
 * must free with cJSON_Delete, or NULL.
 */
void *
ccp_json_parse_body(const CcpHttpResult *res)
{
	const char *end = NULL;
	cJSON	   *root;

	if (res->body == NULL || res->body_len == 0)
		return NULL;
	root = cJSON_ParseWithLengthOpts(res->body, res->body_len, &end, false);
	if (root == NULL)
		return NULL;
	while (end < res->body + res->body_len && scanner_isspace(*end))
		end++;
	if (end != res->body + res->body_len)
	{
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/*
 * ccp_json_get_string returns a palloc'd copy of object[key] when it is a
 * string or a number, else NULL.  object is a cJSON *, maybe NULL.
 */
char *
ccp_json_get_string(void *object, const char *key)
{
	cJSON	   *item;

	if (object == NULL || !cJSON_IsObject((cJSON *) object))
		return NULL;
	item = cJSON_GetObjectItemCaseSensitive((cJSON *) object, key);
	if (cJSON_IsString(item) && item->valuestring != NULL)
		return ccp_vendor_text(item->valuestring);
	if (cJSON_IsNumber(item))
	{
		/* integral values print as integers; the range check avoids UB */
		if (item->valuedouble >= -9e15 && item->valuedouble <= 9e15 &&
			item->valuedouble == (double) (int64) item->valuedouble)
			return psprintf(INT64_FORMAT, (int64) item->valuedouble);
		return psprintf("%g", item->valuedouble);
	}
	return NULL;
}

/*
 * ccp_json_text prints a cJSON tree as compact JSON, frees the tree, and
 * returns the text palloc'd and converted from the database encoding to
 * UTF-8, as every vendor's body must be (the tree's strings are in the
 * database encoding).  A NULL root (a failed cJSON allocation) is reported
 * as out of memory.
 */
char *
ccp_json_text(void *root)
{
	char	   *printed;
	char	   *volatile copy = NULL;

	if (root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not build a JSON request body.")));

	printed = cJSON_PrintUnformatted((cJSON *) root);
	cJSON_Delete((cJSON *) root);
	if (printed == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not print a JSON request body.")));

	PG_TRY();
	{
		copy = pstrdup(printed);
	}
	PG_FINALLY();
	{
		cJSON_free(printed);
	}
	PG_END_TRY();

	return pg_server_to_any(copy, strlen(copy), PG_UTF8);
}

/*
 * ccp_set_json_body makes a cJSON tree (freed here) the request's body,
 * in UTF-8; see ccp_json_text.
 */
void
ccp_set_json_body(CcpHttpRequest *req, void *root)
{
	req->body = ccp_json_text(root);
	req->body_len = strlen(req->body);
}

/* ccp_add_header appends "name: value" to the request's header list. */
void
ccp_add_header(CcpHttpRequest *req, const char *name, const char *value)
{
	req->headers = lappend(req->headers, psprintf("%s: %s", name, value));
}

/* ccp_join_url returns the server's base URL followed by path. */
char *
ccp_join_url(const CcpServer *srv, const char *path)
{
	return psprintf("%s%s", srv->url, path);
}

/*
 * ccp_redact_mark sets mark[i] for every byte of the len bytes of text
 * that is part of an occurrence of needle, compared without regard to
 * ASCII case; overlapping occurrences are all found.
 */
static void
ccp_redact_mark(const char *text, int len, bool *mark, const char *needle)
{
	int			nlen = strlen(needle);
	unsigned char first = pg_tolower((unsigned char) needle[0]);

	for (int i = 0; nlen > 0 && i <= len - nlen; i++)
	{
		if (pg_tolower((unsigned char) text[i]) == first &&
			pg_strncasecmp(text + i, needle, nlen) == 0)
			memset(mark + i, true, nlen);
	}
}

/*
 * ccp_redact_mark_forms marks, as ccp_redact_mark does, every occurrence
 * of secret in the forms a vendor or proxy may echo it in: as sent,
 * percent-encoded (as curl_easy_escape does it; lower-case hex matches
 * too), and JSON-escaped (\" and \\, as cJSON and PostgreSQL write it, and
 * also with "\/" for "/", as some other encoders do).
 */
static void
ccp_redact_mark_forms(const char *text, int len, bool *mark,
					  const char *secret)
{
	char	   *escaped = ccp_http_escape(secret, -1);
	StringInfoData json;

	ccp_redact_mark(text, len, mark, secret);
	if (strcmp(escaped, secret) != 0)
		ccp_redact_mark(text, len, mark, escaped);
	pfree(escaped);

	/* escape_json adds quotes around the string, which are not echoed */
	initStringInfo(&json);
	escape_json(&json, secret);
	json.data[json.len - 1] = '\0';
	if (strcmp(json.data + 1, secret) != 0)
		ccp_redact_mark(text, len, mark, json.data + 1);
	if (strchr(secret, '/') != NULL)
	{
		StringInfoData slash;

		initStringInfo(&slash);
		for (const char *p = json.data + 1; *p != '\0'; p++)
		{
			if (*p == '/')
				appendStringInfoChar(&slash, '\\');
			appendStringInfoChar(&slash, *p);
		}
		ccp_redact_mark(text, len, mark, slash.data);
		pfree(slash.data);
	}
	pfree(json.data);
}

/*
 * ccp_redact_basic_auth returns, palloc'd, the base64 of "user:password",
 * what HTTP Basic authentication (a proxy's included) sends.
 */
static char *
ccp_redact_basic_auth(const char *user, const char *password)
{
	char	   *plain = psprintf("%s:%s", user, password);
	int			plen = strlen(plain);
	char	   *b64 = palloc(pg_b64_enc_len(plen) + 1);
	int			blen = pg_b64_encode(plain, plen, b64, pg_b64_enc_len(plen));

	if (blen < 0)
		elog(ERROR, "could not encode proxy credentials in base64");
	b64[blen] = '\0';
	pfree(plain);
	return b64;
}

/*
 * ccp_redact returns a palloc'd copy of text (vendor or transport text about
 * to be shown or stored) with every secret of srv's user mapping, and token
 * when not NULL, replaced by CCP_REDACTED: in every form
 * ccp_redact_mark_forms lists, and the proxy credentials also as Basic
 * authentication sends them.  Values shorter than CCP_REDACT_MIN_LEN are
 * left alone: they would match ordinary words.
 *
 * Every form of every secret is looked for in the text as given, and each
 * stretch of text covered by one or more matches, overlapping or side by
 * side, becomes one CCP_REDACTED: so a secret that contains another (an
 * sk that starts with the ak) is masked whole, whatever the order of the
 * secrets.  This is the one place every vendor's text passes through
 * before it reaches a row, a log or a message.
 */
char *
ccp_redact(const CcpServer *srv, const char *text, const char *token)
{
	const char *secrets[CCP_MAX_SECRETS + 1];
	int			nsecrets = ccp_server_secrets(srv, secrets);
	int			len = strlen(text);
	bool	   *mark = palloc0(len + 1);
	StringInfoData buf;

	if (token != NULL)
		secrets[nsecrets++] = token;
	for (int i = 0; i < nsecrets; i++)
	{
		if (secrets[i] != NULL && strlen(secrets[i]) >= CCP_REDACT_MIN_LEN)
			ccp_redact_mark_forms(text, len, mark, secrets[i]);
	}
	if (srv->http.proxy_user != NULL && srv->http.proxy_password != NULL)
		ccp_redact_mark_forms(text, len, mark,
							  ccp_redact_basic_auth(srv->http.proxy_user,
													srv->http.proxy_password));

	initStringInfo(&buf);
	for (int i = 0; i < len; i++)
	{
		if (!mark[i])
			appendStringInfoChar(&buf, text[i]);
		else if (i == 0 || !mark[i - 1])
			appendStringInfoString(&buf, CCP_REDACTED);
	}
	pfree(mark);
	return buf.data;
}

/*
 * ccp_clip returns s, or a palloc'd copy of it cut at a character boundary
 * to at most maxbytes bytes followed by "...".  s must be valid in the
 * database encoding.
 */
char *
ccp_clip(char *s, int maxbytes)
{
	int			len = strlen(s);

	if (len <= maxbytes)
		return s;
	len = pg_mbcliplen(s, len, maxbytes);
	return psprintf("%.*s...", len, s);
}

/*
 * ccp_outcome_clean makes an outcome's code and message safe to show and
 * store: secrets and token redacted (see ccp_redact), the message cut to
 * CCP_MAX_MESSAGE_BYTES and the code to CCP_MAX_CODE_BYTES.  The texts must
 * already be valid in the database encoding (ccp_vendor_text).
 */
void
ccp_outcome_clean(const CcpServer *srv, CcpOutcome *out, const char *token)
{
	if (out->message != NULL)
		out->message = ccp_clip(ccp_redact(srv, out->message, token),
								CCP_MAX_MESSAGE_BYTES);
	if (out->code != NULL)
		out->code = ccp_clip(ccp_redact(srv, out->code, token),
							 CCP_MAX_CODE_BYTES);
}

/*
 * ccp_outcome_all_ok tells whether a request erased every one of its nitems
 * items: the request succeeded and, where the vendor answered per item,
 * each item did.  This is the request log's "ok".
 */
bool
ccp_outcome_all_ok(const CcpOutcome *out, int nitems)
{
	if (!out->ok)
		return false;
	if (out->item_ok != NULL)
	{
		for (int i = 0; i < nitems; i++)
		{
			if (!out->item_ok[i])
				return false;
		}
	}
	return true;
}
