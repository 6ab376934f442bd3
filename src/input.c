/*-------------------------------------------------------------------------
 *
 * input.c
 *	  Items and params as they come in: text[] arguments made into C
 *	  strings, the one de-duplication every path uses, the check that a
 *	  value selecting data is neither blank nor holds control characters
 *	  (in all of Unicode, not just ASCII), and an operation's params read
 *	  from jsonb through its vendor, with the params of each request they
 *	  make.
 *
 * The synchronous functions, ccpurge_enqueue, the trigger's flush at
 * commit and the worker's batches all take their items through here, and
 * every loop over a possibly huge list checks for interrupts.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/memutils.h"

/* Returns item i's bytes and sets *len; see ccp_input_mark_duplicates. */
typedef const char *(*CcpItemKey) (const void *items, int64 i, int *len);

/*
 * ccp_input_mark_duplicates sets dup[i] for every item that equals an
 * earlier one.  A hash set keeps it linear for millions of items; each slot
 * holds an item's hash and its position plus one (0: empty), so that items
 * are compared only when their hashes match.
 */
static void
ccp_input_mark_duplicates(const void *items, int64 n, CcpItemKey key,
						  bool *dup)
{
	uint64		size = 16;
	uint64		mask;
	uint64	   *slots;

	while (size < (uint64) n * 2)
		size <<= 1;
	mask = size - 1;
	slots = MemoryContextAllocExtended(CurrentMemoryContext,
									   sizeof(uint64) * size,
									   MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

	for (int64 i = 0; i < n; i++)
	{
		int			len;
		const char *s = key(items, i, &len);
		uint32		hash = hash_bytes((const unsigned char *) s, len);
		uint64		pos = hash & mask;

		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		dup[i] = false;
		for (;;)
		{
			uint64		slot = slots[pos];

			if (slot == 0)
			{
				slots[pos] = ((uint64) hash << 32) | (uint64) (i + 1);
				break;
			}
			if ((uint32) (slot >> 32) == hash)
			{
				int			olen;
				const char *other = key(items, (int64) (slot & 0xFFFFFFFF) - 1, &olen);

				if (olen == len && memcmp(other, s, len) == 0)
				{
					dup[i] = true;
					break;
				}
			}
			pos = (pos + 1) & mask;
		}
	}
	pfree(slots);
}

/* ccp_input_cstring_key is the CcpItemKey of an array of C strings. */
static const char *
ccp_input_cstring_key(const void *items, int64 i, int *len)
{
	const char *s = ((char *const *) items)[i];

	*len = strlen(s);
	return s;
}

/* ccp_input_text_key is the CcpItemKey of an array of text datums. */
static const char *
ccp_input_text_key(const void *items, int64 i, int *len)
{
	text	   *t = (text *) DatumGetPointer(((const Datum *) items)[i]);

	*len = VARSIZE(t) - VARHDRSZ;
	return VARDATA(t);
}

/*
 * ccp_items_distinct removes duplicates from n C strings in place, keeping
 * the first occurrence of each in the original order.  Returns the new
 * count.
 */
int
ccp_items_distinct(char **items, int n)
{
	bool	   *dup;
	int			out = 0;

	if (n < 2)
		return n;
	dup = palloc(sizeof(bool) * n);
	ccp_input_mark_duplicates(items, n, ccp_input_cstring_key, dup);
	for (int i = 0; i < n; i++)
	{
		if (!dup[i])
			items[out++] = items[i];
	}
	pfree(dup);
	return out;
}

/*
 * ccp_datums_distinct does the same for n text datums (not toasted, with
 * 4-byte headers), for the trigger's buffer of possibly millions of items.
 */
int64
ccp_datums_distinct(Datum *items, int64 n)
{
	bool	   *dup;
	int64		out = 0;

	if (n < 2)
		return n;
	dup = MemoryContextAllocExtended(CurrentMemoryContext, sizeof(bool) * n,
									 MCXT_ALLOC_HUGE);
	ccp_input_mark_duplicates(items, n, ccp_input_text_key, dup);
	for (int64 i = 0; i < n; i++)
	{
		if (!dup[i])
			items[out++] = items[i];
	}
	pfree(dup);
	return out;
}

/*
 * ccp_text_array turns a one-dimensional text[] argument into C strings,
 * rejecting NULL, multi-dimensional or empty arrays and NULL elements.
 */
char	  **
ccp_text_array(ArrayType *arr, const char *argname, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **items;

	if (arr == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", argname)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	if (*n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname),
				 errdetail("There is nothing to erase.")));
	items = palloc(sizeof(char *) * *n);
	for (int i = 0; i < *n; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL elements", argname),
					 errdetail("Element %d is NULL.", i + 1)));
		items[i] = TextDatumGetCString(elems[i]);
	}
	return items;
}

/*
 * ccp_items_from_array validates every element of a text[] argument with
 * the operation's item validator and returns the distinct items in their
 * original order.  Raises an ERROR on any bad element, so nothing is sent.
 */
char	  **
ccp_items_from_array(ArrayType *arr, const CcpOpDef *def,
					 const char *argname, int *nitems)
{
	char	  **items = ccp_text_array(arr, argname, nitems);

	for (int i = 0; i < *nitems; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		def->validate_item(def, items[i]);
	}
	*nitems = ccp_items_distinct(items, *nitems);
	return items;
}

/*
 * ccp_items_for_params returns the items of a text[] argument for
 * operation def with params, read by ccp_params_read, as
 * ccp_items_from_array does; when params alone select what to erase (a
 * calldata filter), there are none: it returns NULL with *nitems 0, and
 * an array with elements is an ERROR.  arr may be NULL.
 */
char	  **
ccp_items_for_params(ArrayType *arr, const CcpOpDef *def, const void *params,
					 const char *argname, int *nitems)
{
	if (!ccp_params_itemless(def, params))
		return ccp_items_from_array(arr, def, argname, nitems);
	if (arr != NULL && ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operation \"%s\" takes no items with these params",
						def->name),
				 errdetail("The params alone select what is erased.")));
	*nitems = 0;
	return NULL;
}

/*
 * Code points that show nothing, as sorted, disjoint ranges: Unicode 15's
 * White_Space but for the controls among them (U+0009 to U+000D and
 * U+0085, which ccp_text_problem refuses as controls), General_Category Cf
 * (format characters such as the zero-width space and the byte order
 * mark) and Default_Ignorable_Code_Point (variation selectors, Hangul
 * fillers, tags).
 */
static const struct
{
	pg_wchar	first;
	pg_wchar	last;
}			ccp_invisible[] =
{
	{0x0020, 0x0020}, {0x00A0, 0x00A0}, {0x00AD, 0x00AD}, {0x034F, 0x034F},
	{0x0600, 0x0605}, {0x061C, 0x061C}, {0x06DD, 0x06DD}, {0x070F, 0x070F},
	{0x0890, 0x0891}, {0x08E2, 0x08E2}, {0x115F, 0x1160}, {0x1680, 0x1680},
	{0x17B4, 0x17B5}, {0x180B, 0x180F}, {0x2000, 0x200F}, {0x2028, 0x202F},
	{0x205F, 0x206F}, {0x3000, 0x3000}, {0x3164, 0x3164}, {0xFE00, 0xFE0F},
	{0xFEFF, 0xFEFF}, {0xFFA0, 0xFFA0}, {0xFFF0, 0xFFFB}, {0x110BD, 0x110BD},
	{0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3},
	{0x1D173, 0x1D17A}, {0xE0000, 0xE0FFF},
};

/* ccp_is_invisible tells whether code point c is in ccp_invisible[]. */
static bool
ccp_is_invisible(pg_wchar c)
{
	int			lo = 0;
	int			hi = lengthof(ccp_invisible) - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (c < ccp_invisible[mid].first)
			hi = mid - 1;
		else if (c > ccp_invisible[mid].last)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/*
 * ccp_utf8_problem is ccp_text_problem for len bytes at p in UTF-8, where
 * a byte that does not start a valid sequence counts as some visible
 * character (SQL_ASCII text need not be UTF-8).
 */
static CcpTextProblem
ccp_utf8_problem(const unsigned char *p, int len)
{
	const unsigned char *end = p + len;
	bool		blank = true;

	while (p < end)
	{
		pg_wchar	c;
		int			l = 1;

		if (*p < 0x80)
			c = *p;
		else if ((l = pg_utf_mblen(p)) <= end - p && pg_utf8_islegal(p, l))
			c = utf8_to_unicode(p);
		else
		{
			blank = false;
			p++;
			continue;
		}
		if (c < 0x20 || (c >= 0x7F && c <= 0x9F))
			return CCP_TEXT_CONTROL;
		if (!ccp_is_invisible(c))
			blank = false;
		p += l;
	}
	return blank ? CCP_TEXT_BLANK : CCP_TEXT_OK;
}

/*
 * ccp_text_problem says what makes len bytes at s, text in the database
 * encoding, unfit to be sent as a value that selects data:
 * CCP_TEXT_CONTROL when they contain a control character (C0, DEL or C1,
 * U+0080 to U+009F), CCP_TEXT_BLANK when they are empty or show nothing,
 * only white space and invisible format characters (a vendor could read
 * that as "everything"), else CCP_TEXT_OK.
 *
 * Characters are judged as the vendor gets them, in UTF-8: text in another
 * database encoding is converted first.  Under SQL_ASCII, whose bytes
 * above 0x7F mean nothing in particular, what decodes as UTF-8 is judged
 * as such.
 */
CcpTextProblem
ccp_text_problem(const char *s, int len)
{
	int			dbenc = GetDatabaseEncoding();
	char	   *utf8;
	CcpTextProblem problem;

	if (dbenc != PG_UTF8 && dbenc != PG_SQL_ASCII)
	{
		for (int i = 0; i < len; i++)
		{
			if (IS_HIGHBIT_SET(s[i]))
			{
				/* outside a transaction s comes back as it is: judge that */
				utf8 = pg_server_to_any(s, len, PG_UTF8);
				if (utf8 == s)
					break;
				problem = ccp_utf8_problem((const unsigned char *) utf8,
										   strlen(utf8));
				pfree(utf8);
				return problem;
			}
		}
	}
	return ccp_utf8_problem((const unsigned char *) s, len);
}

/*
 * ccp_jsonb_member finds member key of a jsonb object and copies it to *v;
 * returns false when it is absent.  A JSON null is present (jbvNull).
 */
bool
ccp_jsonb_member(Jsonb *obj, const char *key, JsonbValue *v)
{
	JsonbValue *found;

	if (obj == NULL || !JB_ROOT_IS_OBJECT(obj))
		return false;
	found = getKeyJsonValueFromContainer(&obj->root, key, strlen(key), v);
	return found != NULL;
}

/*
 * ccp_jsonb_int_member reads the integer member key of a params object;
 * returns false when it is absent.  A JSON null is refused as NULL, and
 * anything but an integral number in int's range as not an integer.
 */
bool
ccp_jsonb_int_member(Jsonb *obj, const char *key, int *value)
{
	JsonbValue	v;
	char	   *text;
	char	   *end;
	long		n;

	if (!ccp_jsonb_member(obj, key, &v))
		return false;
	if (v.type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", key)));
	if (v.type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parameter \"%s\" must be an integer", key)));
	text = DatumGetCString(DirectFunctionCall1(numeric_out,
											   NumericGetDatum(v.val.numeric)));
	errno = 0;
	n = strtol(text, &end, 10);
	if (*end != '\0' || errno != 0 || n < INT_MIN || n > INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parameter \"%s\" must be an integer", key)));
	*value = (int) n;
	return true;
}

/*
 * ccp_jsonb_text_array_member reads member key of a params object as a
 * non-empty array of strings and returns them palloc'd, with *n set;
 * returns NULL when the member is absent.  The errors are those of a text[]
 * argument of the same name (see ccp_text_array).
 */
char	  **
ccp_jsonb_text_array_member(Jsonb *obj, const char *key, int *n)
{
	JsonbValue	v;
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	char	  **out;
	int			count = 0;

	*n = 0;
	if (!ccp_jsonb_member(obj, key, &v))
		return NULL;
	if (v.type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", key)));
	if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data) ||
		JsonContainerIsScalar(v.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an array of strings", key)));
	if (JsonContainerSize(v.val.binary.data) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", key),
				 errdetail("There is nothing to erase.")));

	out = palloc(sizeof(char *) * JsonContainerSize(v.val.binary.data));
	it = JsonbIteratorInit(v.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (elem.type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL elements", key),
					 errdetail("Element %d is NULL.", count + 1)));
		if (elem.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must contain only strings", key)));
		out[count++] = pnstrdup(elem.val.string.val, elem.val.string.len);
	}
	*n = count;
	return out;
}

/*
 * ccp_params_key_known tells whether key is one of the comma- or
 * space-separated names in allowed.
 */
static bool
ccp_params_key_known(const char *allowed, const char *key, int keylen)
{
	const char *p = allowed;

	while (*p)
	{
		int			len;

		p += strspn(p, ", ");
		len = strcspn(p, ", ");
		if (len > 0 && len == keylen && strncmp(p, key, len) == 0)
			return true;
		p += len;
	}
	return false;
}

/*
 * ccp_params_read validates the params of operation def (from
 * ccpurge_enqueue, the trigger, ccpurge_call, a queued row, or the
 * arguments of the operation's SQL function) and returns the operation's
 * own struct of them (NULL for operations without params).  params NULL
 * means none.  Keys outside def->param_keys are an error whose hint lists
 * the valid ones; the operation's read_params checks the rest.
 */
void *
ccp_params_read(const CcpOpDef *def, Jsonb *params)
{
	const char *allowed = def->param_keys ? def->param_keys : "";

	if (params != NULL)
	{
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;

		if (!JB_ROOT_IS_OBJECT(params))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("params must be a JSON object")));
		it = JsonbIteratorInit(&params->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY &&
				!ccp_params_key_known(allowed, v.val.string.val,
									  v.val.string.len))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown parameter \"%.*s\" for operation \"%s\"",
								v.val.string.len, v.val.string.val, def->name),
						 allowed[0] ? errhint("Valid parameters are: %s.", allowed)
						 : errhint("This operation takes no parameters.")));
		}
	}
	if (def->read_params == NULL)
		return NULL;
	if (params == NULL)
		params = ccp_jsonb_parse("{}");
	return def->read_params(def, params);
}

/*
 * ccp_jsonb_parse reads JSON text into a jsonb value, palloc'd; text that
 * is not JSON is jsonb_in's ERROR.
 */
Jsonb *
ccp_jsonb_parse(const char *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/*
 * ccp_params_text returns validated params as the operation's canonical
 * JSON text, palloc'd: equal params give equal text, so that queued rows
 * of the same params coalesce.
 */
char *
ccp_params_text(const CcpOpDef *def, const void *params)
{
	return def->params_text ? def->params_text(def, params) : pstrdup("{}");
}

/*
 * ccp_params_split returns the params of every request one chunk of items
 * needs, as a List of the operation's structs: the operation's split, or
 * params alone.
 */
List *
ccp_params_split(const CcpOpDef *def, const void *params)
{
	return def->split_params ? def->split_params(def, params) :
		list_make1((void *) params);
}

/*
 * ccp_params_requests returns the canonical params text of every vendor
 * request one chunk of items needs, as a List of char *: params_text, the
 * canonical text of valid params of def, alone, or the text of each part
 * of the operation's split (an Ozonetel campaign list over the vendor's
 * limit).
 */
List *
ccp_params_requests(const CcpOpDef *def, const char *params_text)
{
	List	   *texts = NIL;
	ListCell   *lc;

	if (def->split_params == NULL)
		return list_make1(pstrdup(params_text));
	foreach(lc, ccp_params_split(def, ccp_params_read(def, ccp_jsonb_parse(params_text))))
		texts = lappend(texts, ccp_params_text(def, lfirst(lc)));
	return texts;
}

/*
 * ccp_params_itemless tells whether params alone say what to erase, so
 * that a request of def carries no items.
 */
bool
ccp_params_itemless(const CcpOpDef *def, const void *params)
{
	return def->itemless != NULL && def->itemless(def, params);
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
 * ccp_params_scope returns params as the request log keeps them (see
 * CcpOpDef.scope_text), palloc'd, or NULL for an operation without
 * params.
 */
char *
ccp_params_scope(const CcpOpDef *def, const void *params)
{
	if (def->scope_text != NULL)
		return def->scope_text(def, params);
	if (def->read_params == NULL)
		return NULL;
	return ccp_params_text(def, params);
}
