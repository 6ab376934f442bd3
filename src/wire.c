/*-------------------------------------------------------------------------
 *
 * wire.c
 *	  What vendor files share to build requests and read answers: JSON
 *	  bodies in UTF-8 with cJSON, headers, URLs, and answers parsed as
 *	  exactly one JSON value.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <cjson/cJSON.h>

#include "mb/pg_wchar.h"
#include "parser/scansup.h"

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
