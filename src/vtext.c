/*-------------------------------------------------------------------------
 *
 * vtext.c
 *	  Text from outside, made safe before it is shown or stored: vendor
 *	  text cleaned to valid, printable text in the database encoding, every
 *	  secret and token redacted, and long text cut at a character boundary.
 *
 * Every vendor's and proxy's text passes through here before it reaches a
 * row, a log line or a message.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"

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
 * ccp_server_secrets fills secrets (room for CCP_MAX_SECRETS) with every
 * credential of srv's user mapping, for redaction, and returns how many.
 * Entries may be NULL.
 */
int
ccp_server_secrets(const CcpServer *srv, const char **secrets)
{
	int			n = 0;

	for (int i = 0; i < srv->vendor->ncreds; i++)
		secrets[n++] = srv->cred[i];
	secrets[n++] = srv->http.proxy_user;
	secrets[n++] = srv->http.proxy_password;
	return n;
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
