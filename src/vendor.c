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

#include "mb/pg_wchar.h"

static const CcpVendor *const ccp_vendors[] = {
	&ccp_vendor_cec,
	&ccp_vendor_isales,
	&ccp_vendor_ozonetel,
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

/* ccp_op_def returns the definition of op and its vendor; op must exist. */
const CcpOpDef *
ccp_op_def(CcpOperation op, const CcpVendor **vendor)
{
	for (int i = 0; i < CCP_NVENDORS; i++)
	{
		for (int j = 0; j < ccp_vendors[i]->nops; j++)
		{
			if (ccp_vendors[i]->ops[j].op == op)
			{
				if (vendor)
					*vendor = ccp_vendors[i];
				return &ccp_vendors[i]->ops[j];
			}
		}
	}
	elog(ERROR, "unknown ccpurge operation %d", (int) op);
	return NULL;				/* keep compiler quiet */
}

/* ccp_params_init sets every parameter to "unset". */
void
ccp_params_init(CcpParams *params)
{
	params->vdn_id = 0;
	params->campaign_id = -1;
	params->archive_history = -1;
	params->filter = NULL;
	params->campaign_names = NIL;
}

/*
 * ccp_validate_nonempty_item is the validator for items the vendor
 * constrains only loosely: not empty, not all blank, no control characters,
 * and within the operation's max_item_len characters.
 */
void
ccp_validate_nonempty_item(const CcpOpDef *def, const char *item)
{
	bool		blank = true;
	const char *p;

	for (p = item; *p; p++)
	{
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid item for %s: contains a control character",
							def->name),
					 errdetail("Items are sent to the vendor as JSON strings and must be printable text.")));
		if (*p != ' ')
			blank = false;
	}
	if (blank)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items for %s must not be empty", def->name),
				 errdetail("An empty or blank item names nobody at the vendor.")));
	/* bytes bound characters, so most items need no character count */
	if (def->max_item_len > 0 && p - item > def->max_item_len &&
		pg_mbstrlen(item) > def->max_item_len)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("item \"%s\" is too long for %s", item, def->name),
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
