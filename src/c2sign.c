/*-------------------------------------------------------------------------
 *
 * c2sign.c
 *	  Huawei's "C2" request signature (used by CC-iSales), and its SQL face
 *	  ccpurge_c2_sign() for known-answer tests and for debugging a 401.
 *
 * A C2 Authorization header signs the method, path, query, a set of
 * headers and the body with an access key (ak) and secret key (sk):
 *
 *	 prefix	 = "auth-v2/" ak "/" ts "/" signed header names
 *	 signKey = hex(HMAC-SHA256(sk, prefix))
 *	 sig	 = hex(HMAC-SHA256(signKey, canonical request))
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_type_d.h"
#include "common/sha2.h"
#include "common/string.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ccpurge.h"

PG_FUNCTION_INFO_V1(ccpurge_c2_sign);

/* One header line to sign, split into its lower-case name and its value. */
typedef struct C2Header
{
	char	   *name;			/* lower case */
	char	   *value;			/* surrounding whitespace removed */
} C2Header;

/*
 * c2_norm percent-encodes len bytes of s as the C2 scheme's N(): every byte
 * but A-Z a-z 0-9 - . _ ~ becomes %XX with upper-case hex.  s need not be
 * NUL-terminated.  Returns a palloc'd string.
 */
static char *
c2_norm(const char *s, size_t len)
{
	char	   *copy;

	/* ccp_http_escape takes a length of 0 to mean "up to the NUL" */
	if (len == 0)
		return pstrdup("");
	if (len > (size_t) (INT_MAX / 3))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("request is too large to sign"),
				 errdetail("A signed part of the request has %zu bytes.", len)));

	copy = pnstrdup(s, len);
	return ccp_http_escape(copy, (int) len);
}

/* c2_header_cmp orders headers by lower-case name, then by value. */
static int
c2_header_cmp(const void *a, const void *b)
{
	const C2Header *ha = (const C2Header *) a;
	const C2Header *hb = (const C2Header *) b;
	int			r = strcmp(ha->name, hb->name);

	return r != 0 ? r : strcmp(ha->value, hb->value);
}

/* c2_string_cmp orders an array of C strings bytewise. */
static int
c2_string_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* c2_is_tchar says whether c may appear in an HTTP header name. */
static bool
c2_is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* c2_is_ows says whether c is HTTP optional whitespace. */
static bool
c2_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * c2_split_headers turns a List of "Name: value" lines into a palloc'd array
 * of C2Header sorted by name, rejecting malformed lines and repeated names
 * (a repeated header has no single signed value).
 */
static C2Header *
c2_split_headers(List *headers, int *nheaders)
{
	C2Header   *out = palloc0(sizeof(C2Header) * Max(list_length(headers), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, headers)
	{
		const char *line = (const char *) lfirst(lc);
		const char *colon = strchr(line, ':');
		const char *v;
		const char *vend;
		int			namelen;
		int			i;

		if (strpbrk(line, "\r\n") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("header to sign contains a line break"),
					 errdetail("Each header must be a single line of the form \"Name: value\".")));
		if (colon == NULL || colon == line)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid header to sign: \"%s\"", line),
					 errdetail("Each header must have the form \"Name: value\".")));

		namelen = colon - line;
		for (i = 0; i < namelen; i++)
		{
			if (!c2_is_tchar(line[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid header name \"%.*s\"", namelen, line),
						 errdetail("A header name consists of letters, digits and the characters !#$%%&'*+-.^_`|~.")));
		}

		v = colon + 1;
		vend = v + strlen(v);
		while (v < vend && c2_is_ows(*v))
			v++;
		while (vend > v && c2_is_ows(vend[-1]))
			vend--;

		out[n].name = pnstrdup(line, namelen);
		for (i = 0; i < namelen; i++)
			out[n].name[i] = pg_ascii_tolower((unsigned char) out[n].name[i]);
		out[n].value = pnstrdup(v, vend - v);
		n++;
	}

	if (n > 1)
		qsort(out, n, sizeof(C2Header), c2_header_cmp);

	for (int i = 1; i < n; i++)
	{
		if (strcmp(out[i - 1].name, out[i].name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("header \"%s\" appears more than once", out[i].name),
					 errdetail("A signed header must have exactly one value.")));
	}

	*nheaders = n;
	return out;
}

/*
 * c2_canonical_query builds the canonical query line from a query string of
 * the form "k1=v1&k2=v2": every pair normalised as N(k) "=" N(v), sorted,
 * joined with "&".  Keys and values are taken literally, not percent-decoded.
 * Returns NULL when the query holds no pair, so the line is left out.
 */
static char *
c2_canonical_query(const char *query)
{
	char	  **pairs;
	int			npairs = 0;
	int			maxpairs = 1;
	const char *p;
	StringInfoData buf;

	if (query == NULL || query[0] == '\0')
		return NULL;

	for (p = query; *p; p++)
	{
		if (*p == '&')
			maxpairs++;
	}
	pairs = palloc(sizeof(char *) * maxpairs);

	p = query;
	while (*p)
	{
		const char *end = strchr(p, '&');
		const char *eq;

		if (end == NULL)
			end = p + strlen(p);
		if (end > p)
		{
			eq = memchr(p, '=', end - p);
			if (eq == NULL)
				pairs[npairs++] = psprintf("%s=", c2_norm(p, end - p));
			else
				pairs[npairs++] = psprintf("%s=%s", c2_norm(p, eq - p),
										   c2_norm(eq + 1, end - eq - 1));
		}
		p = (*end == '&') ? end + 1 : end;
	}

	if (npairs == 0)
		return NULL;
	if (npairs > 1)
		qsort(pairs, npairs, sizeof(char *), c2_string_cmp);

	initStringInfo(&buf);
	for (int i = 0; i < npairs; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, '&');
		appendStringInfoString(&buf, pairs[i]);
	}
	return buf.data;
}

/*
 * ccp_c2_authorization computes the value of the Authorization header of an
 * iSales request under Huawei's C2 scheme (design section 1):
 *
 *	 prefix  = "auth-v2/" AK "/" ts "/" SH
 *	 signKey = hex(HMAC-SHA256(SK, prefix))
 *	 sig	 = hex(HMAC-SHA256(signKey, canonical request))
 *
 * and returns prefix "/" sig, palloc'd.  Every header in headers ("Name:
 * value" lines, exactly as they will be sent) is signed.  query is the query
 * string without "?" (NULL or "" for none), path the request path as sent,
 * body the bytes of the body (body_len 0 for none).  All text must already
 * be in the encoding it is sent in (UTF-8).  Raises an ERROR for malformed
 * headers; the secret never appears in any message.
 */
char *
ccp_c2_authorization(const char *ak, const char *sk, const char *ts,
					 const char *method, const char *path, const char *query,
					 List *headers, const char *body, size_t body_len)
{
	C2Header   *hdrs;
	int			nhdrs;
	char	   *cquery;
	StringInfoData sh;
	StringInfoData prefix;
	StringInfoData canon;
	char		sign_key[PG_SHA256_DIGEST_STRING_LENGTH];
	char		sig[PG_SHA256_DIGEST_STRING_LENGTH];
	char	   *result;

	hdrs = c2_split_headers(headers, &nhdrs);

	initStringInfo(&sh);
	for (int i = 0; i < nhdrs; i++)
	{
		if (i > 0)
			appendStringInfoChar(&sh, ';');
		appendStringInfoString(&sh, hdrs[i].name);
	}

	initStringInfo(&prefix);
	appendStringInfo(&prefix, "auth-v2/%s/%s/%s", ak, ts, sh.data);

	initStringInfo(&canon);
	appendStringInfo(&canon, "%s\n%s\n", method, path);
	cquery = c2_canonical_query(query);
	if (cquery != NULL)
		appendStringInfo(&canon, "%s\n", cquery);
	appendStringInfo(&canon, "%s\n", sh.data);
	for (int i = 0; i < nhdrs; i++)
	{
		if (i > 0)
			appendStringInfoChar(&canon, '\n');
		appendStringInfo(&canon, "%s:%s",
						 c2_norm(hdrs[i].name, strlen(hdrs[i].name)),
						 c2_norm(hdrs[i].value, strlen(hdrs[i].value)));
	}
	appendStringInfoChar(&canon, '\n');
	if (body != NULL && body_len > 0)
		appendStringInfoString(&canon, c2_norm(body, body_len));

	ccp_hmac_sha256_hex(sk, strlen(sk), prefix.data, prefix.len, sign_key);
	ccp_hmac_sha256_hex(sign_key, strlen(sign_key), canon.data, canon.len, sig);
	explicit_bzero(sign_key, sizeof(sign_key));

	result = psprintf("%s/%s", prefix.data, sig);

	pfree(canon.data);
	pfree(prefix.data);
	pfree(sh.data);
	return result;
}

/*
 * c2_arg_utf8 returns a text argument as a C string in UTF-8, the encoding
 * the bytes would be sent in, with its length in *len.
 */
static char *
c2_arg_utf8(text *t, size_t *len)
{
	char	   *s = text_to_cstring(t);
	char	   *u = pg_server_to_any(s, strlen(s), PG_UTF8);

	if (len)
		*len = strlen(u);
	return u;
}

/*
 * ccpurge_c2_sign(ak, sk, ts, method, path, query, headers text[], body)
 * returns the C2 Authorization value for the given request.  A NULL ak, sk,
 * ts, method or path gives NULL, as a strict function would; a NULL query,
 * headers or body means there is none.
 */
Datum
ccpurge_c2_sign(PG_FUNCTION_ARGS)
{
	char	   *ak;
	char	   *sk;
	char	   *ts;
	char	   *method;
	char	   *path;
	char	   *query = NULL;
	char	   *body = NULL;
	size_t		body_len = 0;
	List	   *headers = NIL;
	char	   *result;

	for (int i = 0; i <= 4; i++)
	{
		if (PG_ARGISNULL(i))
			PG_RETURN_NULL();
	}

	ak = text_to_cstring(PG_GETARG_TEXT_PP(0));
	sk = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ts = text_to_cstring(PG_GETARG_TEXT_PP(2));
	method = text_to_cstring(PG_GETARG_TEXT_PP(3));
	path = c2_arg_utf8(PG_GETARG_TEXT_PP(4), NULL);
	if (!PG_ARGISNULL(5))
		query = c2_arg_utf8(PG_GETARG_TEXT_PP(5), NULL);
	if (!PG_ARGISNULL(7))
		body = c2_arg_utf8(PG_GETARG_TEXT_PP(7), &body_len);

	if (!PG_ARGISNULL(6))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(6);
		Datum	   *elems;
		bool	   *nulls;
		int			nelems;

		if (ARR_NDIM(arr) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("headers must be a one-dimensional array")));
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &nelems);
		for (int i = 0; i < nelems; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("headers must not contain null elements")));
			headers = lappend(headers,
							  c2_arg_utf8(DatumGetTextPP(elems[i]), NULL));
		}
	}

	result = ccp_c2_authorization(ak, sk, ts, method, path, query, headers,
								  body, body_len);
	explicit_bzero(sk, strlen(sk));

	PG_RETURN_TEXT_P(cstring_to_text(result));
}
