/*-------------------------------------------------------------------------
 *
 * option.c
 *	  Options of the ccpurge foreign-data wrapper: the validator that checks
 *	  servers and user mappings at DDL time, and the resolution of a server
 *	  plus the current role's user mapping into a CcpServer at call time.
 *
 * Server options are described once, in ccp_server_options[] below; user
 * mapping options are the credential names the vendors declare, collected
 * when the table is first needed, and the proxy credentials of
 * ccp_mapping_options[], valid for every vendor.  The same code checks an
 * option list at CREATE/ALTER time and reads it when a server is used, so a
 * stored value can never mean something different from what the validator
 * accepted.
 *
 * Credentials are never shown in any message, and no message raised while
 * the validator runs puts the statement, which holds them, into the server
 * log.
 *
 *-------------------------------------------------------------------------
 */
#include "ccpurge.h"

#include <ctype.h>
#include <limits.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/skey.h"
#include "access/table.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(ccpurge_fdw_validator);

/* Name of the foreign-data wrapper the extension script creates. */
#define CCP_FDW_NAME			"ccpurge"

/* Defaults of the optional server options. */
#define CCP_DEFAULT_TIMEOUT_MS	30000
#define CCP_DEFAULT_CONNECT_MS	10000
#define CCP_DEFAULT_TOKEN_TTL	3600

/* Bounds of rate_limit's N. */
#define CCP_RATE_MAX_COUNT		1000000

/* How an option's value is checked and where it is stored. */
typedef enum CcpOptKind
{
	CCP_OPT_VENDOR,				/* name of a known vendor */
	CCP_OPT_URL,				/* base URL, see ccp_check_url() */
	CCP_OPT_INT,				/* integer in [min, max] */
	CCP_OPT_BATCH,				/* integer in [1, vendor's max_batch] */
	CCP_OPT_RATE,				/* N/second, N/minute or N/hour */
	CCP_OPT_TOKEN_TTL,			/* like CCP_OPT_INT, token vendors only */
	CCP_OPT_PATH,				/* absolute file name */
	CCP_OPT_BOOL,				/* anything parse_bool() accepts */
	CCP_OPT_PROXY,				/* proxy URL, see ccp_http_check_proxy() */
	CCP_OPT_HOST_LIST,			/* hosts, see ccp_check_host_list() */
	CCP_OPT_CREDENTIAL,			/* non-empty, printable, never shown */
	CCP_OPT_PROXY_USER			/* a credential without ':' */
} CcpOptKind;

typedef struct CcpOption
{
	const char *name;			/* NULL ends the table */
	Oid			context;		/* catalog of the objects it belongs to */
	CcpOptKind	kind;
	bool		required;
	int			min;			/* CCP_OPT_INT and CCP_OPT_TOKEN_TTL */
	int			max;
	const char *unit;			/* for the error detail, or NULL */

	/*
	 * Field of CcpServer the value goes to: an int for the integer kinds, a
	 * char * for the string kinds; -1 when the code stores it itself.
	 */
	int			offset;
	const char *requires;		/* option that must be given too, or NULL */
} CcpOption;

/* The server options, in the order the hint lists them. */
static const CcpOption ccp_server_options[] = {
	{"vendor", ForeignServerRelationId, CCP_OPT_VENDOR, true,
	0, 0, NULL, -1, NULL},
	{"url", ForeignServerRelationId, CCP_OPT_URL, true,
	0, 0, NULL, -1, NULL},
	{"timeout_ms", ForeignServerRelationId, CCP_OPT_INT, false,
	1, 3600000, "milliseconds", offsetof(CcpServer, http.timeout_ms), NULL},
	{"connect_timeout_ms", ForeignServerRelationId, CCP_OPT_INT, false,
	1, 600000, "milliseconds", offsetof(CcpServer, http.connect_timeout_ms),
	NULL},
	{"batch_size", ForeignServerRelationId, CCP_OPT_BATCH, false,
	1, 0, NULL, offsetof(CcpServer, batch_size), NULL},
	{"rate_limit", ForeignServerRelationId, CCP_OPT_RATE, false,
	0, 0, NULL, -1, NULL},
	{"max_inflight", ForeignServerRelationId, CCP_OPT_INT, false,
	1, 1000, NULL, offsetof(CcpServer, max_inflight), NULL},
	{"token_ttl", ForeignServerRelationId, CCP_OPT_TOKEN_TTL, false,
	60, 3600, "seconds", offsetof(CcpServer, token_ttl), NULL},
	{"ca_file", ForeignServerRelationId, CCP_OPT_PATH, false,
	0, 0, NULL, offsetof(CcpServer, http.ca_file), NULL},
	{"verify_tls", ForeignServerRelationId, CCP_OPT_BOOL, false,
	0, 0, NULL, -1, NULL},
	{"proxy", ForeignServerRelationId, CCP_OPT_PROXY, false,
	0, 0, NULL, offsetof(CcpServer, http.proxy), NULL},
	{"no_proxy", ForeignServerRelationId, CCP_OPT_HOST_LIST, false,
	0, 0, NULL, offsetof(CcpServer, http.no_proxy), "proxy"},
};

/*
 * The user mapping options of every vendor, after the vendors' own
 * credentials in the hint.  The proxy credentials go together; they are
 * used only when the server has a proxy.
 */
static const CcpOption ccp_mapping_options[] = {
	{"proxy_user", UserMappingRelationId, CCP_OPT_PROXY_USER, false,
	0, 0, NULL, offsetof(CcpServer, http.proxy_user), "proxy_password"},
	{"proxy_password", UserMappingRelationId, CCP_OPT_CREDENTIAL, false,
	0, 0, NULL, offsetof(CcpServer, http.proxy_password), "proxy_user"},
};

/*
 * All options: ccp_server_options[], one CCP_OPT_CREDENTIAL entry per
 * distinct credential name of any vendor, ccp_mapping_options[], then a
 * terminator.  Built once per backend by ccp_init_options().
 */
static CcpOption *ccp_options = NULL;

static void ccp_hide_statement(void *arg);
static void ccp_init_options(void);
static const CcpOption *ccp_find_option(const char *name, Oid context);
static void ccp_unknown_option(const char *name, Oid context) pg_attribute_noreturn();
static char *ccp_vendor_list(bool token_ttl_only);
static const CcpVendor *ccp_check_vendor(const char *value);
static bool ccp_parse_int(const char *value, int *result);
static void ccp_check_server_value(const CcpOption *opt, const char *value,
								   const CcpVendor *vendor, bool at_ddl,
								   CcpServer *srv);
static void ccp_check_host_list(const CcpOption *opt, const char *value);
static void ccp_check_credential(const CcpOption *opt, const char *value);
static void ccp_check_requires(List *options, Oid context);
static void ccp_apply_mapping_options(List *options, CcpServer *srv);
static const CcpVendor *ccp_apply_server_options(List *options, bool at_ddl,
												 CcpServer *srv);
static const char *ccp_option_value(List *options, const char *name);
static Oid	ccp_fdw_oid(void);
static ForeignServer *ccp_find_vendor_server(const CcpVendor *vendor);
static int	ccp_cmp_names(const ListCell *a, const ListCell *b);
static bool ccp_find_user_mapping(Oid userid, Oid serverid, Oid *umuser);

/*
 * ccpurge_fdw_validator checks the options of the ccpurge wrapper itself,
 * of its servers and of its user mappings; it raises an error for the first
 * unknown option, bad value or missing required option.
 *
 * PostgreSQL passes the complete resulting option list, for ALTER as well as
 * for CREATE, so required options can be checked here.  The catalog of a
 * user mapping does not say which server (and so which vendor) it is for,
 * hence which credentials are required is checked by ccp_server_resolve().
 *
 * Any option may hold a password (a user mapping's credentials, or a url or
 * proxy with user info, which is refused), so no message raised here puts
 * the statement into the server log (see ccp_hide_statement).
 */
Datum
ccpurge_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ErrorContextCallback hide;
	ListCell   *lc;

	/* the statement holds every option, passwords included */
	hide.callback = ccp_hide_statement;
	hide.arg = NULL;
	hide.previous = error_context_stack;
	error_context_stack = &hide;

	ccp_init_options();

	if (catalog == ForeignServerRelationId)
		(void) ccp_apply_server_options(options, true, NULL);
	else
	{
		foreach(lc, options)
		{
			DefElem    *def = (DefElem *) lfirst(lc);
			const CcpOption *opt = ccp_find_option(def->defname, catalog);

			if (opt == NULL)
				ccp_unknown_option(def->defname, catalog);
			if (opt->kind == CCP_OPT_CREDENTIAL ||
				opt->kind == CCP_OPT_PROXY_USER)
				ccp_check_credential(opt, defGetString(def));
		}
		ccp_check_requires(options, catalog);
	}

	error_context_stack = hide.previous;
	PG_RETURN_VOID();
}

/*
 * ccp_hide_statement is the error context callback of the validator: it
 * keeps the statement (STATEMENT:) and the context lines (CONTEXT:, which
 * quote the statement when it runs in a function or DO block) of any
 * message raised while options are checked out of the server log.  The
 * client still gets the context: it sent the statement itself.
 */
static void
ccp_hide_statement(void *arg)
{
	errhidestmt(true);
	errhidecontext(true);
}

/*
 * ccp_cred_list lists a vendor's credential options as a user mapping's
 * OPTIONS clause takes them, for hints: "app_key '...', app_secret '...'".
 */
static char *
ccp_cred_list(const CcpVendor *vendor)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < vendor->ncreds; i++)
		appendStringInfo(&buf, "%s%s '...'", i > 0 ? ", " : "",
						 vendor->cred_names[i]);
	return buf.data;
}

/*
 * ccp_server_find returns the ccpurge server to use for vendor: servername
 * (NULL: the only server of vendor), checked to be a ccpurge server of that
 * vendor.  No privilege or user mapping is checked.
 */
static ForeignServer *
ccp_server_find(const char *servername, const CcpVendor *vendor)
{
	ForeignServer *server;
	const char *server_vendor;

	ccp_init_options();

	if (servername == NULL)
		server = ccp_find_vendor_server(vendor);
	else
	{
		server = GetForeignServerByName(servername, false);
		if (server->fdwid != ccp_fdw_oid())
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("server \"%s\" does not use foreign-data wrapper \"%s\"",
							server->servername, CCP_FDW_NAME)));
	}

	server_vendor = ccp_option_value(server->options, "vendor");
	if (server_vendor == NULL || strcmp(server_vendor, vendor->name) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a server of vendor \"%s\"",
						server->servername, vendor->name),
				 server_vendor ?
				 errdetail("Server \"%s\" is for vendor \"%s\", but this operation needs a server of vendor \"%s\".",
						   server->servername, server_vendor, vendor->name) : 0));
	return server;
}

/*
 * ccp_server_name returns the name of the server ccp_server_resolve would
 * use for servername and vendor, palloc'd, without looking at privileges
 * or user mappings: for checks made before any role uses it (CREATE
 * TRIGGER).  Raises the same errors as ccp_server_resolve when there is
 * no such server, or several and none is named.
 */
char *
ccp_server_name(const char *servername, const CcpVendor *vendor)
{
	return pstrdup(ccp_server_find(servername, vendor)->servername);
}

/*
 * ccp_server_build finds the server to use for vendor and the user mapping
 * of userid for it, checks them, and returns everything a request needs,
 * allocated in the current memory context; see ccp_server_resolve.
 */
static CcpServer *
ccp_server_build(const char *servername, const CcpVendor *vendor,
				 Oid userid)
{
	ForeignServer *server = ccp_server_find(servername, vendor);
	UserMapping *um;
	CcpServer  *srv;
	AclResult	aclresult;
	Oid			umuser;

	aclresult = pg_foreign_server_aclcheck(server->serverid, userid,
										   ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);

	/* GetUserMapping's own error names the role, not the server or a remedy */
	if (!ccp_find_user_mapping(userid, server->serverid, &umuser))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("user mapping not found for server \"%s\"",
						server->servername),
				 errdetail("Role \"%s\" has no user mapping for the server, and there is no mapping for PUBLIC.",
						   GetUserNameFromId(userid, false)),
				 errhint("Create one with CREATE USER MAPPING FOR %s SERVER %s OPTIONS (%s).",
						 quote_identifier(GetUserNameFromId(userid, false)),
						 quote_identifier(server->servername),
						 ccp_cred_list(vendor))));
	um = GetUserMapping(userid, server->serverid);

	srv = (CcpServer *) palloc0(sizeof(CcpServer));
	srv->serverid = server->serverid;
	srv->umid = um->umid;
	srv->userid = userid;
	srv->servername = pstrdup(server->servername);
	srv->vendor = vendor;
	(void) ccp_apply_server_options(server->options, false, srv);

	for (int i = 0; i < vendor->ncreds; i++)
	{
		const char *name = vendor->cred_names[i];
		const char *value;

		value = ccp_option_value(um->options, name);
		if (value == NULL || value[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("user mapping for server \"%s\" lacks option \"%s\"",
							server->servername, name),
					 errhint("Add it with ALTER USER MAPPING FOR %s SERVER %s OPTIONS (ADD %s '...').",
							 OidIsValid(umuser) ?
							 quote_identifier(GetUserNameFromId(umuser, false)) :
							 "PUBLIC",
							 quote_identifier(server->servername), name)));
		srv->cred[i] = pstrdup(value);
	}
	ccp_apply_mapping_options(um->options, srv);
	if (vendor->check_mapping != NULL)
		vendor->check_mapping(srv);

	return srv;
}

/*
 * Resolved servers, per (server name or none, vendor, role), so that a
 * function called once per row does not scan pg_foreign_server and check
 * every option again each time.  Any change of a foreign server, user
 * mapping or foreign-data wrapper empties the cache (see
 * ccp_server_cache_inval); USAGE is checked on every use, as role
 * membership changes fire no catalog invalidation here.
 */
typedef struct CcpServerKey
{
	Oid			userid;
	const CcpVendor *vendor;
	NameData	name;			/* empty: the vendor's only server */
} CcpServerKey;

typedef struct CcpServerEntry
{
	CcpServerKey key;
	CcpServer  *srv;			/* in ccp_server_cxt */
	bool		insecure_http;	/* ccpurge.allow_insecure_http it was checked under */
} CcpServerEntry;

static HTAB *ccp_server_cache = NULL;
static MemoryContext ccp_server_cxt = NULL;
static bool ccp_server_cache_stale = false;

/* ccp_server_cache_inval marks the cache stale after a catalog change. */
static void
ccp_server_cache_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	ccp_server_cache_stale = true;
}

/*
 * ccp_server_copy returns a copy of srv, strings included, in the current
 * memory context, so that a caller's server outlives any change of the
 * cache.
 */
static CcpServer *
ccp_server_copy(const CcpServer *srv)
{
	CcpServer  *copy = palloc(sizeof(CcpServer));

	*copy = *srv;
	copy->servername = pstrdup(srv->servername);
	copy->url = pstrdup(srv->url);
#define CCP_COPY_STR(f) (copy->f = srv->f ? pstrdup(srv->f) : NULL)
	CCP_COPY_STR(http.ca_file);
	CCP_COPY_STR(http.proxy);
	CCP_COPY_STR(http.no_proxy);
	CCP_COPY_STR(http.proxy_user);
	CCP_COPY_STR(http.proxy_password);
	for (int i = 0; i < CCP_MAX_CREDS; i++)
		CCP_COPY_STR(cred[i]);
#undef CCP_COPY_STR
	return copy;
}

/*
 * ccp_server_cache_entry returns the cache entry for key, creating the
 * cache (and emptying it when a catalog change made it stale) first.
 */
static CcpServerEntry *
ccp_server_cache_entry(const CcpServerKey *key, bool *found)
{
	if (ccp_server_cache == NULL || ccp_server_cache_stale)
	{
		HASHCTL		ctl;

		if (ccp_server_cxt == NULL)
		{
			ccp_server_cxt = AllocSetContextCreate(CacheMemoryContext,
												   "ccpurge servers",
												   ALLOCSET_SMALL_SIZES);
			CacheRegisterSyscacheCallback(FOREIGNSERVEROID,
										  ccp_server_cache_inval, (Datum) 0);
			CacheRegisterSyscacheCallback(USERMAPPINGOID,
										  ccp_server_cache_inval, (Datum) 0);
			CacheRegisterSyscacheCallback(FOREIGNDATAWRAPPEROID,
										  ccp_server_cache_inval, (Datum) 0);
		}
		else
			MemoryContextReset(ccp_server_cxt);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(CcpServerKey);
		ctl.entrysize = sizeof(CcpServerEntry);
		ctl.hcxt = ccp_server_cxt;
		ccp_server_cache = hash_create("ccpurge servers", 16, &ctl,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ccp_server_cache_stale = false;
	}
	return hash_search(ccp_server_cache, key, HASH_ENTER, found);
}

/*
 * ccp_server_resolve finds the server to use for vendor and the user
 * mapping of userid for it, checks them, and returns everything a request
 * needs, allocated in the current memory context.
 *
 * servername NULL means the only ccpurge server whose vendor is vendor; it
 * is an error if there is none or more than one.  userid must have USAGE on
 * the server and a user mapping (its own or PUBLIC) holding every
 * credential the vendor needs.  A server resolved before, with no change
 * of servers, mappings or ccpurge.allow_insecure_http since, comes from
 * the cache after its USAGE check.
 */
CcpServer *
ccp_server_resolve(const char *servername, const CcpVendor *vendor,
				   Oid userid)
{
	CcpServerKey key;
	CcpServerEntry *entry;
	bool		found;
	CcpServer  *srv;
	MemoryContext old;

	memset(&key, 0, sizeof(key));
	key.userid = userid;
	key.vendor = vendor;
	if (servername != NULL)
	{
		if (strlen(servername) >= NAMEDATALEN)
			return ccp_server_build(servername, vendor, userid);
		namestrcpy(&key.name, servername);
	}

	/* invalidations of catalog changes others committed arrive here */
	AcceptInvalidationMessages();
	entry = ccp_server_cache_entry(&key, &found);
	if (found && entry->srv != NULL &&
		entry->insecure_http == ccp_allow_insecure_http)
	{
		AclResult	aclresult = pg_foreign_server_aclcheck(entry->srv->serverid,
														   userid, ACL_USAGE);

		if (aclresult == ACLCHECK_OK)
			return ccp_server_copy(entry->srv);
	}
	entry->srv = NULL;

	srv = ccp_server_build(servername, vendor, userid);
	old = MemoryContextSwitchTo(ccp_server_cxt);
	entry->srv = ccp_server_copy(srv);
	entry->insecure_http = ccp_allow_insecure_http;
	MemoryContextSwitchTo(old);
	return srv;
}

/*
 * ccp_parse_rate_limit reads "N/second", "N/minute" or "N/hour" (plural
 * unit names and blanks around the parts allowed, units case-insensitive)
 * with N from 1 to 1000000.  It returns false for anything else, leaving
 * the outputs alone.
 */
bool
ccp_parse_rate_limit(const char *value, int *count, int *period_ms)
{
	static const struct
	{
		const char *unit;
		int			ms;
	}			units[] = {
		{"second", 1000}, {"seconds", 1000},
		{"minute", 60 * 1000}, {"minutes", 60 * 1000},
		{"hour", 3600 * 1000}, {"hours", 3600 * 1000},
	};
	const char *p = value;
	const char *word;
	int			wordlen;
	int			n = 0;

	while (isspace((unsigned char) *p))
		p++;
	if (!isdigit((unsigned char) *p))
		return false;
	while (isdigit((unsigned char) *p))
	{
		n = n * 10 + (*p++ - '0');
		if (n > CCP_RATE_MAX_COUNT)
			return false;
	}
	if (n < 1)
		return false;

	while (isspace((unsigned char) *p))
		p++;
	if (*p++ != '/')
		return false;
	while (isspace((unsigned char) *p))
		p++;

	word = p;
	while (isalpha((unsigned char) *p))
		p++;
	wordlen = p - word;
	while (isspace((unsigned char) *p))
		p++;
	if (*p != '\0' || wordlen == 0)
		return false;

	for (int i = 0; i < lengthof(units); i++)
	{
		if (strlen(units[i].unit) == wordlen &&
			pg_strncasecmp(word, units[i].unit, wordlen) == 0)
		{
			*count = n;
			*period_ms = units[i].ms;
			return true;
		}
	}
	return false;
}

/*
 * ccp_check_url raises an error unless url is acceptable as a server's base
 * URL.  The transport rules (scheme, no credentials, plain http only to
 * loopback unless allowed) belong to http.c and are checked every time,
 * since the setting may have changed since the DDL.  User info is refused
 * before anything else, so that the error names it whatever else is wrong;
 * then, at DDL time, a query or fragment, with an error that names the
 * option, because the API paths are appended to the URL.  The URL is not
 * echoed: it might hold something secret.
 */
void
ccp_check_url(const char *url, bool at_ddl)
{
	ccp_http_check_userinfo(url, false);
	if (at_ddl && strpbrk(url, "?#") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"url\""),
				 errdetail("The URL must not contain a query string or a fragment."),
				 errhint("Give the base URL only; ccpurge appends the API paths to it.")));

	ccp_http_check_url(url);
}

/*
 * ccp_init_options builds ccp_options[] the first time it is needed: the
 * server options, then every vendor's credential names once each.
 */
static void
ccp_init_options(void)
{
	int			nserver = lengthof(ccp_server_options);
	int			maxopts;
	int			n;
	CcpOption  *opts;

	if (ccp_options != NULL)
		return;

	maxopts = nserver + ccp_vendor_count() * CCP_MAX_CREDS +
		lengthof(ccp_mapping_options) + 1;
	opts = (CcpOption *) MemoryContextAllocZero(TopMemoryContext,
												maxopts * sizeof(CcpOption));
	memcpy(opts, ccp_server_options, sizeof(ccp_server_options));
	n = nserver;

	for (int v = 0; v < ccp_vendor_count(); v++)
	{
		const CcpVendor *vendor = ccp_vendor_at(v);

		for (int c = 0; c < vendor->ncreds; c++)
		{
			const char *name = vendor->cred_names[c];
			bool		seen = false;

			for (int i = nserver; i < n; i++)
			{
				if (strcmp(opts[i].name, name) == 0)
					seen = true;
			}
			if (seen)
				continue;
			opts[n].name = name;
			opts[n].context = UserMappingRelationId;
			opts[n].kind = CCP_OPT_CREDENTIAL;
			opts[n].offset = -1;
			n++;
		}
	}
	memcpy(opts + n, ccp_mapping_options, sizeof(ccp_mapping_options));
	n += lengthof(ccp_mapping_options);
	/* opts[n] stays zeroed: the terminator */
	ccp_options = opts;
}

/* ccp_find_option returns the option called name in context, or NULL. */
static const CcpOption *
ccp_find_option(const char *name, Oid context)
{
	for (const CcpOption *opt = ccp_options; opt->name; opt++)
	{
		if (opt->context == context && strcmp(opt->name, name) == 0)
			return opt;
	}
	return NULL;
}

/*
 * ccp_unknown_option raises the error for an option name that is not valid
 * in context, with a hint listing the valid ones.
 */
static void
ccp_unknown_option(const char *name, Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const CcpOption *opt = ccp_options; opt->name; opt++)
	{
		if (opt->context == context)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", opt->name);
	}

	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
			 errmsg("invalid option \"%s\"", name),
			 buf.len > 0 ?
			 errhint("Valid options in this context are: %s.", buf.data) :
			 errhint("There are no valid options in this context.")));
}

/*
 * ccp_vendor_list returns the vendor names joined by ", "; with
 * token_ttl_only, only the vendors that accept token_ttl.
 */
static char *
ccp_vendor_list(bool token_ttl_only)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int v = 0; v < ccp_vendor_count(); v++)
	{
		if (token_ttl_only && !ccp_vendor_at(v)->has_token_ttl)
			continue;
		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "",
						 ccp_vendor_at(v)->name);
	}
	return buf.data;
}

/* ccp_check_vendor returns the vendor called value, or raises an error. */
static const CcpVendor *
ccp_check_vendor(const char *value)
{
	const CcpVendor *vendor = ccp_vendor_by_name(value);

	if (vendor == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"vendor\": \"%s\"", value),
				 errhint("Valid vendors are: %s.", ccp_vendor_list(false))));
	return vendor;
}

/*
 * ccp_parse_int reads a decimal integer, blanks around it allowed, into
 * *result; it returns false if value is anything else or out of int range.
 */
static bool
ccp_parse_int(const char *value, int *result)
{
	char	   *end;
	long		n;

	errno = 0;
	n = strtol(value, &end, 10);
	if (end == value || errno == ERANGE || n < INT_MIN || n > INT_MAX)
		return false;
	while (isspace((unsigned char) *end))
		end++;
	if (*end != '\0')
		return false;
	*result = (int) n;
	return true;
}

/*
 * ccp_check_server_value raises an error unless value is valid for the
 * server option opt of a server of vendor; if srv is not NULL the value is
 * also stored there.  At DDL time batch_size must be within the vendor's
 * limit; when a server is used a larger stored value is only capped.
 */
static void
ccp_check_server_value(const CcpOption *opt, const char *value,
					   const CcpVendor *vendor, bool at_ddl, CcpServer *srv)
{
	int			ival = 0;
	int			count;
	int			period_ms;
	bool		bval;

	switch (opt->kind)
	{
		case CCP_OPT_VENDOR:
			/* checked by the caller, which needs the vendor first */
			break;

		case CCP_OPT_URL:
			if (value[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"url\": \"\""),
						 errdetail("The base URL of the vendor's API is required.")));
			ccp_check_url(value, at_ddl);
			if (srv)
			{
				char	   *url = pstrdup(value);
				char	   *scheme_end = strstr(url, "://");
				char	   *keep = scheme_end ? scheme_end + 3 : url;
				size_t		len = strlen(url);

				/* ccp_join_url() adds paths that start with '/' */
				while (len > 0 && url + len - 1 >= keep && url[len - 1] == '/')
					url[--len] = '\0';
				srv->url = url;
			}
			break;

		case CCP_OPT_INT:
		case CCP_OPT_TOKEN_TTL:
			if (opt->kind == CCP_OPT_TOKEN_TTL && !vendor->has_token_ttl)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("option \"%s\" is not supported for vendor \"%s\"",
								opt->name, vendor->name),
						 errdetail("Only these vendors let the client choose the token lifetime: %s.",
								   ccp_vendor_list(true))));
			if (!ccp_parse_int(value, &ival) ||
				ival < opt->min || ival > opt->max)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 opt->unit ?
						 errdetail("Valid values are whole numbers of %s from %d to %d.",
								   opt->unit, opt->min, opt->max) :
						 errdetail("Valid values are whole numbers from %d to %d.",
								   opt->min, opt->max)));
			if (srv)
				*(int *) ((char *) srv + opt->offset) = ival;
			break;

		case CCP_OPT_BATCH:
			if (!ccp_parse_int(value, &ival) || ival < 1 ||
				(at_ddl && ival > vendor->max_batch))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errdetail("Vendor \"%s\" accepts from 1 to %d items per request.",
								   vendor->name, vendor->max_batch)));
			if (srv)
				*(int *) ((char *) srv + opt->offset) =
					Min(ival, vendor->max_batch);
			break;

		case CCP_OPT_RATE:
			if (!ccp_parse_rate_limit(value, &count, &period_ms))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errdetail("Valid values are N/second, N/minute or N/hour, with N from 1 to %d.",
								   CCP_RATE_MAX_COUNT)));
			if (srv)
			{
				srv->rate_count = count;
				srv->rate_period_ms = period_ms;
			}
			break;

		case CCP_OPT_PATH:
			if (value[0] == '\0' || !is_absolute_path(value))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errdetail("The file name must be an absolute path.")));
			if (srv)
				*(char **) ((char *) srv + opt->offset) = pstrdup(value);
			break;

		case CCP_OPT_BOOL:
			if (!parse_bool(value, &bval))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errdetail("Valid values are Boolean values such as true and false.")));
			if (srv)
				srv->http.verify_tls = bval;
			break;

		case CCP_OPT_PROXY:
			if (value[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"\"", opt->name),
						 errdetail("The value must be the URL of a proxy."),
						 errhint("Drop the option to connect without a proxy.")));
			ccp_http_check_proxy(value);
			if (srv)
				*(char **) ((char *) srv + opt->offset) = pstrdup(value);
			break;

		case CCP_OPT_HOST_LIST:
			ccp_check_host_list(opt, value);
			if (srv)
				*(char **) ((char *) srv + opt->offset) = pstrdup(value);
			break;

		case CCP_OPT_CREDENTIAL:
		case CCP_OPT_PROXY_USER:
			elog(ERROR, "user mapping option \"%s\" on a server", opt->name);
			break;
	}
}

/*
 * ccp_check_host_list raises an error unless value is a list of hosts as
 * libcurl's no-proxy list takes it: host names, domains (".example.com"),
 * IP addresses (IPv6 ones without brackets, or they never match) and CIDR
 * blocks ("10.0.0.0/8"), separated by commas with blanks allowed around
 * them; or "*" alone, for every host.  Older libcurl releases also split
 * at blanks, newer ones do not, so a blank between two hosts is refused.
 * The value is not secret and is shown.
 */
static void
ccp_check_host_list(const CcpOption *opt, const char *value)
{
	const char *p = value;
	int			nhosts = 0;

	if (strcmp(value, "*") == 0)
		return;

	for (;;)
	{
		const char *start;
		const char *slash = NULL;
		bool		bad = false;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;

		start = p;
		for (; *p != '\0' && *p != ' ' && *p != '\t' && *p != ','; p++)
		{
			unsigned char c = (unsigned char) *p;

			/* "*.example.com" is no wildcard for libcurl: it never matches */
			if (c == '*')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errdetail("Only a list that is just \"*\" matches every host; a domain is written \".example.com\", which also matches its subdomains.")));
			if (c == '/')
			{
				if (slash != NULL || p == start)
					bad = true;
				slash = p;
			}
			else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					   (c >= '0' && c <= '9') || strchr(".-_:", c) != NULL))
				bad = true;
		}

		/* a CIDR block: an address, '/', and a prefix length */
		if (slash != NULL &&
			(p - slash < 2 || p - slash > 4 ||
			 strspn(slash + 1, "0123456789") < (size_t) (p - slash - 1)))
			bad = true;
		if (p - start > 255)
			bad = true;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0' && *p != ',')
			bad = true;
		if (bad)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"%s\": \"%s\"",
							opt->name, value),
					 errdetail("The value must list host names, domains such as \".example.com\", IP addresses (IPv6 ones without brackets) or CIDR blocks such as \"10.0.0.0/8\", separated by commas.")));
		nhosts++;
	}

	if (nhosts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"",
						opt->name, value),
				 errdetail("The list must name at least one host.")));
}

/*
 * ccp_check_credential raises an error unless value is acceptable for the
 * user mapping option opt: not empty and without control characters, as it
 * goes into JSON bodies and HTTP headers; a proxy user name also without a
 * colon.  The value is never shown (nor is the statement, see
 * ccp_hide_statement).
 */
static void
ccp_check_credential(const CcpOption *opt, const char *value)
{
	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\"", opt->name),
				 errdetail("The value must not be empty.")));

	for (const char *p = value; *p; p++)
	{
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"%s\"", opt->name),
					 errdetail("The value must not contain control characters.")));
	}

	if (opt->kind == CCP_OPT_PROXY_USER && strchr(value, ':') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\"", opt->name),
				 errdetail("The value must not contain a colon, which separates the user name from the password in proxy authentication.")));
}

/*
 * ccp_check_requires raises an error for the first option of options given
 * without the option it requires.  Every option in options must be known in
 * context.
 */
static void
ccp_check_requires(List *options, Oid context)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		const CcpOption *opt = ccp_find_option(def->defname, context);

		if (opt->requires != NULL &&
			ccp_option_value(options, opt->requires) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("option \"%s\" requires option \"%s\"",
							opt->name, opt->requires),
					 errhint("Add option \"%s\" too, or remove option \"%s\".",
							 opt->requires, opt->name)));
	}
}

/*
 * ccp_apply_mapping_options stores in srv the user mapping options the
 * table gives a field (the proxy credentials); the vendor's credentials are
 * read by the caller.  srv's server options must be applied already: proxy
 * credentials are kept only when the server has a proxy, since without one
 * they are not used.
 */
static void
ccp_apply_mapping_options(List *options, CcpServer *srv)
{
	for (const CcpOption *opt = ccp_options; opt->name; opt++)
	{
		const char *value;

		if (opt->context != UserMappingRelationId || opt->offset < 0)
			continue;
		value = ccp_option_value(options, opt->name);
		*(char **) ((char *) srv + opt->offset) = value ? pstrdup(value) : NULL;
	}
	if (srv->http.proxy == NULL)
	{
		srv->http.proxy_user = NULL;
		srv->http.proxy_password = NULL;
	}
}

/*
 * ccp_apply_server_options checks a server's complete option list and
 * returns its vendor.  With srv not NULL it also fills srv's settings: the
 * vendor's defaults first, then the options given.  Errors come in this
 * order: unknown option names, an unknown vendor, missing required options,
 * bad values in list order, an option without the one it requires, then a
 * plain http url through a proxy that is not on this machine.
 */
static const CcpVendor *
ccp_apply_server_options(List *options, bool at_ddl, CcpServer *srv)
{
	const CcpVendor *vendor = NULL;
	const char *proxy;
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (ccp_find_option(def->defname, ForeignServerRelationId) == NULL)
			ccp_unknown_option(def->defname, ForeignServerRelationId);
	}

	/* batch_size and token_ttl depend on the vendor */
	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "vendor") == 0)
			vendor = ccp_check_vendor(defGetString(def));
	}

	for (const CcpOption *opt = ccp_options; opt->name; opt++)
	{
		if (opt->context != ForeignServerRelationId || !opt->required ||
			ccp_option_value(options, opt->name) != NULL)
			continue;
		if (opt->kind == CCP_OPT_VENDOR)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("option \"%s\" is required for a ccpurge server",
							opt->name),
					 errhint("Valid vendors are: %s.", ccp_vendor_list(false))));
		else
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("option \"%s\" is required for a ccpurge server",
							opt->name),
					 opt->kind == CCP_OPT_URL ?
					 errhint("Set it to the base URL of the vendor's API, for example url 'https://api.example.com'.") : 0));
	}
	Assert(vendor != NULL);

	if (srv)
	{
		srv->http.timeout_ms = CCP_DEFAULT_TIMEOUT_MS;
		srv->http.connect_timeout_ms = CCP_DEFAULT_CONNECT_MS;
		srv->http.verify_tls = true;
		srv->http.ca_file = NULL;
		srv->http.proxy = NULL;
		srv->http.no_proxy = NULL;
		srv->http.proxy_user = NULL;
		srv->http.proxy_password = NULL;
		srv->batch_size = vendor->default_batch > 0 ?
			vendor->default_batch : vendor->max_batch;
		srv->rate_count = 0;
		srv->rate_period_ms = 0;
		if (vendor->default_rate_limit &&
			!ccp_parse_rate_limit(vendor->default_rate_limit,
								  &srv->rate_count, &srv->rate_period_ms))
			elog(ERROR, "invalid default rate limit \"%s\" of vendor \"%s\"",
				 vendor->default_rate_limit, vendor->name);
		srv->max_inflight = vendor->default_max_inflight;
		srv->token_ttl = CCP_DEFAULT_TOKEN_TTL;
	}

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		ccp_check_server_value(ccp_find_option(def->defname,
											   ForeignServerRelationId),
							   defGetString(def), vendor, at_ddl, srv);
	}

	ccp_check_requires(options, ForeignServerRelationId);

	proxy = ccp_option_value(options, "proxy");
	if (proxy != NULL)
		ccp_http_check_route(ccp_option_value(options, "url"), proxy);

	return vendor;
}

/* ccp_option_value returns the value of option name in options, or NULL. */
static const char *
ccp_option_value(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, name) == 0)
			return defGetString(def);
	}
	return NULL;
}

/* ccp_fdw_oid returns the OID of the ccpurge foreign-data wrapper. */
static Oid
ccp_fdw_oid(void)
{
	return GetForeignDataWrapperByName(CCP_FDW_NAME, false)->fdwid;
}

/*
 * ccp_find_vendor_server returns the only ccpurge server of vendor in the
 * current database, or raises an error naming the candidates.
 */
static ForeignServer *
ccp_find_vendor_server(const CcpVendor *vendor)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	List	   *names = NIL;
	Oid			found = InvalidOid;

	/* pg_foreign_server has no index on srvfdw, and it is small */
	rel = table_open(ForeignServerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_foreign_server_srvfdw,
				BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ccp_fdw_oid()));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_foreign_server form = (Form_pg_foreign_server) GETSTRUCT(tuple);
		Datum		datum;
		bool		isnull;
		const char *value;

		datum = heap_getattr(tuple, Anum_pg_foreign_server_srvoptions,
							 RelationGetDescr(rel), &isnull);
		if (isnull)
			continue;
		value = ccp_option_value(untransformRelOptions(datum), "vendor");
		if (value == NULL || strcmp(value, vendor->name) != 0)
			continue;
		names = lappend(names, pstrdup(NameStr(form->srvname)));
		found = form->oid;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no ccpurge server for vendor \"%s\"", vendor->name),
				 errhint("Create one with CREATE SERVER %s FOREIGN DATA WRAPPER ccpurge OPTIONS (vendor '%s', url '...').",
						 vendor->name, vendor->name)));

	if (list_length(names) > 1)
	{
		StringInfoData buf;
		ListCell   *lc;

		list_sort(names, ccp_cmp_names);
		initStringInfo(&buf);
		foreach(lc, names)
			appendStringInfo(&buf, "%s\"%s\"", buf.len > 0 ? ", " : "",
							 (char *) lfirst(lc));
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("more than one ccpurge server for vendor \"%s\"",
						vendor->name),
				 errdetail("The servers of vendor \"%s\" are %s.",
						   vendor->name, buf.data),
				 errhint("Pass the server name as the last argument.")));
	}

	return GetForeignServer(found);
}

/* ccp_cmp_names orders a list of C strings for list_sort(). */
static int
ccp_cmp_names(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/*
 * ccp_find_user_mapping tells whether the role userid has a user mapping
 * for serverid, its own or PUBLIC's, the way GetUserMapping() picks it;
 * *umuser is set to the mapping's role, InvalidOid for PUBLIC.
 */
static bool
ccp_find_user_mapping(Oid userid, Oid serverid, Oid *umuser)
{
	Oid			candidates[2] = {userid, InvalidOid};

	for (int i = 0; i < lengthof(candidates); i++)
	{
		HeapTuple	tuple;

		tuple = SearchSysCache2(USERMAPPINGUSERSERVER,
								ObjectIdGetDatum(candidates[i]),
								ObjectIdGetDatum(serverid));
		if (HeapTupleIsValid(tuple))
		{
			*umuser = ((Form_pg_user_mapping) GETSTRUCT(tuple))->umuser;
			ReleaseSysCache(tuple);
			return true;
		}
	}
	return false;
}

