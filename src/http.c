/*-------------------------------------------------------------------------
 *
 * http.c
 *	  The libcurl transport of ccpurge: URL checks, the per-backend multi
 *	  handle, and synchronous and asynchronous HTTP transfers.
 *
 * This file knows nothing about vendors.  It owns every libcurl object of
 * the process: one multi handle, created on first use and kept for the
 * life of the backend so that connections are reused across requests and
 * across SQL calls; a small pool of idle easy handles; and the in-flight
 * calls.  All of them are malloc'd because they outlive any query; the
 * results handed to callers are palloc'd in the caller's memory context
 * when a call is finished.
 *
 * A transport failure (connection refused, timeout, TLS failure, response
 * too large, a proxy's refusal) is not an error: it is reported in the
 * CcpHttpResult so that the caller can record it.  Only misuse, out of
 * memory and interrupts raise errors.
 *
 * Proxies come only from the options a caller passes, never from the
 * environment.  libcurl before 8.19 reuses a connection through an HTTP
 * proxy, a CONNECT tunnel included, for any later transfer through the same
 * proxy, whatever proxy credentials that transfer carries; a tunnel opened
 * with one role's credentials must not carry another role's requests.  So
 * transfers with proxy credentials keep their connections apart, whatever
 * the libcurl: one connection cache (a libcurl share object) per set of
 * credentials, while every other transfer uses the multi handle's.
 *
 * Transfers are always driven in short slices with CHECK_FOR_INTERRUPTS()
 * between them, so a query cancel or statement_timeout stops a transfer
 * promptly.  ccp_http_perform() releases its own call when an error
 * escapes; users of the asynchronous API must call ccp_http_abort_all() in
 * their error cleanup.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include "ccpurge.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "portability/instr_time.h"

/* Longest single wait on the network before interrupts are checked. */
#define CCP_HTTP_SLICE_MS		50

/* Idle easy handles kept for reuse. */
#define CCP_HTTP_POOL_SIZE		8

/* Idle connections the multi handle keeps open (and each share). */
#define CCP_HTTP_MAX_CONNECTS	16

/* Sets of proxy credentials with a connection cache of their own. */
#define CCP_HTTP_MAX_SHARES		8

/*
 * The connection cache of one set of proxy credentials, a slot of
 * ccp_http_shares[]; free when share is NULL.  The strings are malloc'd.
 * The password is kept to tell the sets apart (libcurl keeps it in the
 * connections anyway) and is wiped when the slot is freed.
 */
typedef struct CcpHttpShare
{
	CURLSH	   *share;
	char	   *user;
	char	   *password;
	int			users;			/* calls attached to the share */
	uint64		last_used;		/* ccp_http_share_clock when last taken */
} CcpHttpShare;

/*
 * One transfer, from ccp_http_start() to ccp_http_finish().  Allocated with
 * malloc; lives in ccp_http_calls until it is released.
 */
struct CcpHttpCall
{
	dlist_node	node;			/* in ccp_http_calls */
	dlist_node	done_node;		/* in ccp_http_done while queued */
	CURL	   *easy;
	struct curl_slist *headers;
	CcpHttpShare *share;		/* connection cache in use, or NULL */
	bool		proxied;		/* a proxy was configured */
	bool		proxy_auth;		/* with proxy credentials */
	void	   *arg;			/* the caller's, returned as given */
	bool		in_multi;		/* added to the multi handle */
	bool		done;			/* transfer over, result is valid */
	bool		queued;			/* in ccp_http_done */
	CURLcode	result;
	size_t		max_len;		/* largest body accepted */
	int			sends;			/* requests libcurl sent for the transfer */
	bool		too_big;		/* write callback refused the body */
	bool		no_memory;		/* write callback could not grow buf */
	char	   *buf;			/* response body so far, malloc'd */
	size_t		len;
	size_t		cap;
	instr_time	started;
	double		elapsed_ms;
	char		errbuf[CURL_ERROR_SIZE];
};

/*
 * The parts of a URL that the checks look at, palloc'd; NULL when the part
 * is absent.
 */
typedef struct CcpUrlParts
{
	char	   *scheme;
	char	   *user;
	char	   *password;
	char	   *options;
	char	   *host;			/* IPv6 addresses keep their brackets */
	char	   *port;			/* effective port, default filled in */
	char	   *path;			/* "/" when the URL has none */
	char	   *query;
	char	   *fragment;
} CcpUrlParts;

static bool ccp_http_global_done = false;
static CURLM *ccp_http_multi = NULL;
static dlist_head ccp_http_calls = DLIST_STATIC_INIT(ccp_http_calls);
static dlist_head ccp_http_done = DLIST_STATIC_INIT(ccp_http_done);
static int	ccp_http_ncalls = 0;
static CURL *ccp_http_pool[CCP_HTTP_POOL_SIZE];
static int	ccp_http_npool = 0;
static CcpHttpShare ccp_http_shares[CCP_HTTP_MAX_SHARES];
static uint64 ccp_http_share_clock = 0;

/*
 * ccp_http_global_init calls curl_global_init once per process, before the
 * first libcurl object is made.
 */
static void
ccp_http_global_init(void)
{
	CURLcode	rc;

	if (ccp_http_global_done)
		return;
	rc = curl_global_init(CURL_GLOBAL_ALL);
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize the HTTP library"),
				 errdetail("curl_global_init() failed: %s.",
						   curl_easy_strerror(rc))));
	ccp_http_global_done = true;
}

/*
 * ccp_http_multi_error reports a failure of a multi-handle function.  Such
 * failures are not transport errors of one transfer but problems of the
 * whole machinery, so they raise an error.
 */
static void
ccp_http_multi_error(CURLMcode mc, const char *func)
{
	ereport(ERROR,
			(errcode(mc == CURLM_OUT_OF_MEMORY ?
					 ERRCODE_OUT_OF_MEMORY : ERRCODE_SYSTEM_ERROR),
			 errmsg("could not run HTTP transfers"),
			 errdetail("%s() failed: %s.", func, curl_multi_strerror(mc))));
}

/*
 * ccp_http_get_multi returns the backend's multi handle, creating it on
 * first use.
 */
static CURLM *
ccp_http_get_multi(void)
{
	CURLMcode	mc;

	if (ccp_http_multi != NULL)
		return ccp_http_multi;

	ccp_http_global_init();
	ccp_http_multi = curl_multi_init();
	if (ccp_http_multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_multi_init() failed.")));
	mc = curl_multi_setopt(ccp_http_multi, CURLMOPT_MAXCONNECTS,
						   (long) CCP_HTTP_MAX_CONNECTS);
	if (mc != CURLM_OK)
		ccp_http_multi_error(mc, "curl_multi_setopt");
	return ccp_http_multi;
}

/*
 * ccp_http_get_easy returns an easy handle in its default state, from the
 * pool if one is idle.
 */
static CURL *
ccp_http_get_easy(void)
{
	CURL	   *easy;

	if (ccp_http_npool > 0)
		return ccp_http_pool[--ccp_http_npool];

	ccp_http_global_init();
	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_easy_init() failed.")));
	return easy;
}

/*
 * ccp_http_put_easy returns an easy handle that is not in the multi handle
 * to the pool, or frees it when the pool is full.  Connections belong to
 * the multi handle, so they survive either way.
 */
static void
ccp_http_put_easy(CURL *easy)
{
	if (easy == NULL)
		return;
	if (ccp_http_npool < CCP_HTTP_POOL_SIZE)
	{
		curl_easy_reset(easy);
		ccp_http_pool[ccp_http_npool++] = easy;
	}
	else
		curl_easy_cleanup(easy);
}

/*
 * ccp_http_share_free closes the connections of a share no call is
 * attached to, wipes its credentials and frees the slot.  Never raises an
 * error.
 */
static void
ccp_http_share_free(CcpHttpShare *share)
{
	Assert(share->users == 0);
	(void) curl_share_cleanup(share->share);
	free(share->user);
	if (share->password != NULL)
	{
		explicit_bzero(share->password, strlen(share->password));
		free(share->password);
	}
	memset(share, 0, sizeof(CcpHttpShare));
}

/*
 * ccp_http_share_for returns the connection cache of the proxy credentials
 * user and password, making one if there is none: in a free slot, or in
 * place of the least recently used cache that no call is using.  Returns
 * NULL when every slot is in use by calls in flight; the caller must then
 * keep its transfer off every cache.
 */
static CcpHttpShare *
ccp_http_share_for(const char *user, const char *password)
{
	CcpHttpShare *victim = NULL;
	CURLSH	   *share;
	CURLSHcode	sc;
	char	   *u;
	char	   *p;

	for (int i = 0; i < CCP_HTTP_MAX_SHARES; i++)
	{
		CcpHttpShare *s = &ccp_http_shares[i];

		if (s->share == NULL)
		{
			if (victim == NULL || victim->share != NULL)
				victim = s;
			continue;
		}
		if (strcmp(s->user, user) == 0 && strcmp(s->password, password) == 0)
		{
			s->last_used = ++ccp_http_share_clock;
			return s;
		}
		if (s->users == 0 &&
			(victim == NULL ||
			 (victim->share != NULL && s->last_used < victim->last_used)))
			victim = s;
	}
	if (victim == NULL)
		return NULL;
	if (victim->share != NULL)
		ccp_http_share_free(victim);

	ccp_http_global_init();
	share = curl_share_init();
	if (share == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_share_init() failed.")));
	sc = curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	if (sc != CURLSHE_OK)
	{
		curl_share_cleanup(share);
		ereport(ERROR,
				(errcode(sc == CURLSHE_NOMEM ?
						 ERRCODE_OUT_OF_MEMORY : ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("could not set up a connection cache for proxy credentials"),
				 errdetail("curl_share_setopt() failed: %s.",
						   curl_share_strerror(sc))));
	}
	u = strdup(user);
	p = strdup(password);
	if (u == NULL || p == NULL)
	{
		free(u);
		if (p != NULL)
		{
			explicit_bzero(p, strlen(p));
			free(p);
		}
		curl_share_cleanup(share);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	victim->share = share;
	victim->user = u;
	victim->password = p;
	victim->users = 0;
	victim->last_used = ++ccp_http_share_clock;
	return victim;
}

/*
 * ccp_http_release takes a call out of every list, detaches its easy
 * handle and frees everything it holds.  Never raises an error, so it is
 * safe in PG_CATCH blocks.
 */
static void
ccp_http_release(CcpHttpCall *call)
{
	if (call->in_multi)
	{
		/* failure would only mean the handle is not there any more */
		(void) curl_multi_remove_handle(ccp_http_multi, call->easy);
		call->in_multi = false;
	}
	if (call->queued)
	{
		dlist_delete(&call->done_node);
		call->queued = false;
	}
	dlist_delete(&call->node);
	ccp_http_ncalls--;

	if (call->share != NULL)
	{
		/* a pooled handle must not keep the share: reset leaves it set */
		(void) curl_easy_setopt(call->easy, CURLOPT_SHARE, NULL);
		call->share->users--;
		call->share = NULL;
	}
	if (call->easy != NULL)
		ccp_http_put_easy(call->easy);
	if (call->headers != NULL)
		curl_slist_free_all(call->headers);
	free(call->buf);
	free(call);
}

/*
 * ccp_http_debug_cb counts the requests libcurl sends for a transfer (the
 * request headers going out, a proxy's CONNECT left aside): libcurl sends
 * a request again on a new connection when a reused one turns out dead,
 * and each send must be its own record.  It runs inside libcurl: no
 * ereport, no palloc.  Everything else libcurl would print is dropped.
 */
static int
ccp_http_debug_cb(CURL *easy, curl_infotype type, char *data, size_t size,
				  void *userdata)
{
	CcpHttpCall *call = (CcpHttpCall *) userdata;

	if (type == CURLINFO_HEADER_OUT &&
		!(size >= 8 && memcmp(data, "CONNECT ", 8) == 0))
		call->sends++;
	return 0;
}

/*
 * ccp_http_write_cb appends received body bytes to the call's buffer.  It
 * runs inside libcurl: it must not ereport or palloc.  Returning anything
 * but the given size makes libcurl abort the transfer.
 */
static size_t
ccp_http_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	CcpHttpCall *call = (CcpHttpCall *) userdata;
	size_t		n = size * nmemb;

	if (n == 0)
		return 0;
	if (n > call->max_len || call->len > call->max_len - n)
	{
		call->too_big = true;
		return 0;
	}
	if (call->len + n > call->cap)
	{
		size_t		newcap = call->cap > 0 ? call->cap : 8192;
		char	   *newbuf;

		while (newcap < call->len + n)
			newcap *= 2;
		if (newcap > call->max_len)
			newcap = call->max_len;
		newbuf = realloc(call->buf, newcap);
		if (newbuf == NULL)
		{
			call->no_memory = true;
			return 0;
		}
		call->buf = newbuf;
		call->cap = newcap;
	}
	memcpy(call->buf + call->len, data, n);
	call->len += n;
	return n;
}

/*
 * ccp_http_header_is tells whether a "Name: value" (or "Name;") header
 * line is the header called name, ignoring case.
 */
static bool
ccp_http_header_is(const char *line, const char *name)
{
	size_t		len = strlen(name);

	return pg_strncasecmp(line, name, len) == 0 &&
		(line[len] == ':' || line[len] == ';');
}

/*
 * ccp_http_append_header adds one line to a call's header list, raising
 * out of memory if libcurl cannot copy it.  The list stays owned by the
 * call, so it is freed by ccp_http_release() on any path.
 */
static void
ccp_http_append_header(CcpHttpCall *call, const char *line)
{
	struct curl_slist *l;

	l = curl_slist_append(call->headers, line);
	if (l == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_slist_append() failed.")));
	call->headers = l;
}

/*
 * ccp_http_setopt_check checks the result of one curl_easy_setopt() call.  A
 * refused option means libcurl lacks a feature ccpurge relies on, so the
 * transfer must not go ahead with weaker settings.
 */
static void
ccp_http_setopt_check(CURLcode rc, const char *what)
{
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(rc == CURLE_OUT_OF_MEMORY ?
						 ERRCODE_OUT_OF_MEMORY : ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("could not configure an HTTP transfer"),
				 errdetail("curl_easy_setopt() failed for %s: %s.",
						   what, curl_easy_strerror(rc))));
}

#define CCP_SETOPT(easy, opt, val) \
	ccp_http_setopt_check(curl_easy_setopt((easy), (opt), (val)), #opt)

/*
 * ccp_http_setup_proxy configures the easy handle of a new call to go
 * through opts->proxy, which must not be NULL and must have passed
 * ccp_http_check_proxy().  An https proxy is verified with the server's TLS
 * settings.  A call with proxy credentials is attached to their connection
 * cache, or, when none can be had, gets a connection that is used once.
 * Raises an error on misuse; the caller releases the call then.
 */
static void
ccp_http_setup_proxy(CcpHttpCall *call, const CcpHttpOptions *opts)
{
	CURL	   *easy = call->easy;
	const char *password = opts->proxy_password ? opts->proxy_password : "";
	CcpHttpShare *share;

	CCP_SETOPT(easy, CURLOPT_PROXY, opts->proxy);
	/* an empty list, not none: none would let NO_PROXY in */
	CCP_SETOPT(easy, CURLOPT_NOPROXY, opts->no_proxy ? opts->no_proxy : "");
	CCP_SETOPT(easy, CURLOPT_PROXY_SSL_VERIFYPEER, opts->verify_tls ? 1L : 0L);
	CCP_SETOPT(easy, CURLOPT_PROXY_SSL_VERIFYHOST, opts->verify_tls ? 2L : 0L);
	if (opts->ca_file != NULL && opts->ca_file[0] != '\0')
		CCP_SETOPT(easy, CURLOPT_PROXY_CAINFO, opts->ca_file);
	call->proxied = true;

	if (opts->proxy_user == NULL)
		return;

	share = ccp_http_share_for(opts->proxy_user, password);
	if (share != NULL)
	{
		CCP_SETOPT(easy, CURLOPT_SHARE, share->share);
		call->share = share;
		share->users++;
	}
	else
	{
		CCP_SETOPT(easy, CURLOPT_FRESH_CONNECT, 1L);
		CCP_SETOPT(easy, CURLOPT_FORBID_REUSE, 1L);
	}
	CCP_SETOPT(easy, CURLOPT_PROXYUSERNAME, opts->proxy_user);
	CCP_SETOPT(easy, CURLOPT_PROXYPASSWORD, password);
	call->proxy_auth = true;
}

/*
 * ccp_http_setup configures the easy handle of a new call for one request.
 * It copies everything it needs from req (libcurl copies strings, and the
 * body is copied with CURLOPT_COPYPOSTFIELDS), so req may be freed as soon
 * as the call is started.  Raises an error on misuse; the caller releases
 * the call then.
 */
static void
ccp_http_setup(CcpHttpCall *call, const CcpHttpOptions *opts,
			   const CcpHttpRequest *req)
{
	CURL	   *easy = call->easy;
	bool		is_post;
	bool		has_body = (req->body != NULL);
	bool		has_type = false;
	bool		has_expect = false;
	ListCell   *lc;
	const char *m;

	/* a method is one token; anything else would corrupt the request */
	if (req->method == NULL || req->method[0] == '\0')
		elog(ERROR, "HTTP request has no method");
	for (m = req->method; *m; m++)
	{
		if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z')))
			elog(ERROR, "invalid HTTP method");
	}
	is_post = (strcmp(req->method, "POST") == 0);

	foreach(lc, req->headers)
	{
		const char *line = (const char *) lfirst(lc);

		/*
		 * A line break would let a value (a token from a vendor, say) add
		 * headers of its own.  The header is not printed: it may hold a
		 * secret.
		 */
		if (strchr(line, '\r') != NULL || strchr(line, '\n') != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("HTTP request header contains a line break")));

		if (ccp_http_header_is(line, "Content-Type"))
			has_type = true;
		else if (ccp_http_header_is(line, "Expect"))
			has_expect = true;
		else if (ccp_http_header_is(line, "Content-Length"))
		{
			/*
			 * libcurl sends a caller's Content-Length as given and then the
			 * body by its own size; a mismatch would break the framing.
			 */
			const char *v = line + strlen("Content-Length") + 1;
			char	   *end;
			unsigned long long n;

			while (*v == ' ' || *v == '\t')
				v++;
			errno = 0;
			n = strtoull(v, &end, 10);
			while (*end == ' ' || *end == '\t')
				end++;
			if (errno != 0 || end == v || *end != '\0' ||
				n != (unsigned long long) (has_body ? req->body_len : 0))
				elog(ERROR, "Content-Length header does not match the request body");
		}
		ccp_http_append_header(call, line);
	}

	/* libcurl would otherwise ask for 100-continue on large bodies */
	if (!has_expect)
		ccp_http_append_header(call, "Expect:");
	/* and label a body as a form unless told otherwise */
	if ((has_body || is_post) && !has_type)
		ccp_http_append_header(call, "Content-Type:");

	CCP_SETOPT(easy, CURLOPT_PRIVATE, (void *) call);
	CCP_SETOPT(easy, CURLOPT_ERRORBUFFER, call->errbuf);
	CCP_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);

	/*
	 * Without this, removing a transfer that is still resolving its host
	 * name (on a cancel) waits for the resolver thread to finish.
	 */
	CCP_SETOPT(easy, CURLOPT_QUICK_EXIT, 1L);
	CCP_SETOPT(easy, CURLOPT_URL, req->url);
	CCP_SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	CCP_SETOPT(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	CCP_SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);

	/*
	 * No proxy from the environment (http_proxy, NO_PROXY and the like,
	 * inherited from the postmaster): the plain-http rule looks at where the
	 * request goes, and that must be only what the options say.  An empty
	 * proxy turns the environment's off.
	 */
	if (opts->proxy == NULL)
		CCP_SETOPT(easy, CURLOPT_PROXY, "");
	else
		ccp_http_setup_proxy(call, opts);

	/*
	 * HTTP/1.1 and the path as given, so that what iSales signs (headers
	 * byte for byte, the path as sent) is what goes on the wire.
	 */
	CCP_SETOPT(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	CCP_SETOPT(easy, CURLOPT_PATH_AS_IS, 1L);

	if (opts->timeout_ms > 0)
		CCP_SETOPT(easy, CURLOPT_TIMEOUT_MS, (long) opts->timeout_ms);
	if (opts->connect_timeout_ms > 0)
		CCP_SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS,
				   (long) opts->connect_timeout_ms);

	CCP_SETOPT(easy, CURLOPT_SSL_VERIFYPEER, opts->verify_tls ? 1L : 0L);
	CCP_SETOPT(easy, CURLOPT_SSL_VERIFYHOST, opts->verify_tls ? 2L : 0L);
	if (opts->ca_file != NULL && opts->ca_file[0] != '\0')
		CCP_SETOPT(easy, CURLOPT_CAINFO, opts->ca_file);

	call->max_len = req->max_response > 0 ? req->max_response :
		CCP_MAX_RESPONSE_BYTES;
	CCP_SETOPT(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) call->max_len);
	CCP_SETOPT(easy, CURLOPT_WRITEFUNCTION, ccp_http_write_cb);
	/* count what goes out: libcurl resends on a reused connection it finds dead */
	CCP_SETOPT(easy, CURLOPT_DEBUGFUNCTION, ccp_http_debug_cb);
	CCP_SETOPT(easy, CURLOPT_DEBUGDATA, (void *) call);
	CCP_SETOPT(easy, CURLOPT_VERBOSE, 1L);
	CCP_SETOPT(easy, CURLOPT_WRITEDATA, (void *) call);
	CCP_SETOPT(easy, CURLOPT_USERAGENT, "ccpurge/1.0");
	CCP_SETOPT(easy, CURLOPT_HTTPHEADER, call->headers);

	/*
	 * A body always goes through POSTFIELDS, which also makes a POST without
	 * body send "Content-Length: 0" instead of reading stdin; any other
	 * method replaces the verb, so DELETE with a body works.
	 */
	if (has_body || is_post)
	{
		CCP_SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE,
				   (curl_off_t) (has_body ? req->body_len : 0));
		CCP_SETOPT(easy, CURLOPT_COPYPOSTFIELDS, has_body ? req->body : "");
	}
	if (!is_post)
		CCP_SETOPT(easy, CURLOPT_CUSTOMREQUEST, req->method);
}

/*
 * ccp_http_collect takes finished transfers from the multi handle, detaches
 * their easy handles (the connections stay in the multi handle's cache) and
 * queues them for ccp_http_next_done() in completion order.
 */
static void
ccp_http_collect(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(ccp_http_multi, &left)) != NULL)
	{
		CURL	   *easy = msg->easy_handle;
		CURLcode	result = msg->data.result;
		char	   *priv = NULL;
		CcpHttpCall *call;
		instr_time	now;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is invalid once the handle is removed; copied above */
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		call = (CcpHttpCall *) priv;
		(void) curl_multi_remove_handle(ccp_http_multi, easy);
		if (call == NULL)
			continue;
		call->in_multi = false;
		call->done = true;
		call->result = result;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, call->started);
		call->elapsed_ms = INSTR_TIME_GET_MILLISEC(now);
		dlist_push_tail(&ccp_http_done, &call->done_node);
		call->queued = true;
	}
}

/*
 * ccp_http_run lets libcurl make whatever progress it can without waiting
 * and collects finished transfers.  Returns how many are still running.
 */
static int
ccp_http_run(void)
{
	CURLMcode	mc;
	int			running = 0;

	mc = curl_multi_perform(ccp_http_multi, &running);
	if (mc != CURLM_OK)
		ccp_http_multi_error(mc, "curl_multi_perform");
	ccp_http_collect();
	return running;
}

/*
 * ccp_http_wait waits at most ms milliseconds (capped to one slice) for
 * network activity of any transfer.  Signals interrupt the wait early.
 */
static void
ccp_http_wait(long ms)
{
	CURLMcode	mc;

	if (ms > CCP_HTTP_SLICE_MS)
		ms = CCP_HTTP_SLICE_MS;
	if (ms <= 0)
		return;
	mc = curl_multi_poll(ccp_http_multi, NULL, 0, (int) ms, NULL);
	if (mc != CURLM_OK)
		ccp_http_multi_error(mc, "curl_multi_poll");
}

/*
 * ccp_http_parse_url parses url with libcurl's URL parser, the one libcurl
 * itself uses for the transfer, and fills parts with palloc'd copies.
 * Raises an error if the URL cannot be parsed; proxy says whether url is
 * a proxy's, for the message.
 */
static void
ccp_http_parse_url(const char *url, CcpUrlParts *parts, bool proxy)
{
	static const CURLUPart which[] = {
		CURLUPART_SCHEME, CURLUPART_USER, CURLUPART_PASSWORD,
		CURLUPART_OPTIONS, CURLUPART_HOST, CURLUPART_PORT,
		CURLUPART_PATH, CURLUPART_QUERY, CURLUPART_FRAGMENT
	};
	char	  **dest[] = {
		&parts->scheme, &parts->user, &parts->password,
		&parts->options, &parts->host, &parts->port,
		&parts->path, &parts->query, &parts->fragment
	};
	char	   *got[lengthof(which)];
	CURLU	   *u;
	CURLUcode	uc;
	int			i;

	memset(parts, 0, sizeof(*parts));
	memset(got, 0, sizeof(got));
	if (url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 proxy ? errmsg("proxy URL is missing") : errmsg("URL is missing")));

	ccp_http_global_init();
	u = curl_url();
	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_url() failed.")));

	/* unknown schemes parse, so that the check below names them */
	uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc != CURLUE_OK)
	{
		curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(uc == CURLUE_OUT_OF_MEMORY ?
						 ERRCODE_OUT_OF_MEMORY : ERRCODE_INVALID_PARAMETER_VALUE),
				 proxy ? errmsg("invalid proxy URL") : errmsg("invalid URL"),
				 errdetail("curl_url_set() failed: %s.",
						   curl_url_strerror(uc)),
				 errhidestmt(true),
				 proxy ? errhint("Write the proxy as http://host:port, https://host:port or socks5h://host:port.") : 0));
	}

	for (i = 0; i < lengthof(which); i++)
	{
		unsigned int flags = (which[i] == CURLUPART_PORT) ?
			CURLU_DEFAULT_PORT : 0;

		uc = curl_url_get(u, which[i], &got[i], flags);
		if (uc == CURLUE_OUT_OF_MEMORY)
			break;
		if (uc != CURLUE_OK)
			got[i] = NULL;
	}
	curl_url_cleanup(u);

	PG_TRY();
	{
		if (uc == CURLUE_OUT_OF_MEMORY)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("curl_url_get() failed.")));
		for (i = 0; i < lengthof(which); i++)
			*dest[i] = got[i] ? pstrdup(got[i]) : NULL;
	}
	PG_FINALLY();
	{
		for (i = 0; i < lengthof(which); i++)
			curl_free(got[i]);
	}
	PG_END_TRY();
}

/*
 * ccp_http_is_loopback tells whether host, as libcurl's URL parser returns
 * it, is certainly a loopback address: "localhost" (which libcurl resolves
 * itself, without DNS), 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104.
 */
static bool
ccp_http_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char		buf[INET6_ADDRSTRLEN + 1];
	size_t		len = strlen(host);

	if (pg_strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len > 2 && host[0] == '[' && host[len - 1] == ']' &&
		len - 2 < sizeof(buf))
	{
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return false;
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(&a6))
			return a6.s6_addr[12] == 127;
	}
	return false;
}

/*
 * ccp_http_check_host raises an error unless host, as parsed from a URL,
 * is ASCII.  libcurl converts international names to punycode only in some
 * locales, so such a host could go out in two forms.
 */
static void
ccp_http_check_host(const char *host)
{
	for (const char *c = host; *c; c++)
	{
		if (IS_HIGHBIT_SET(*c))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL host name must be ASCII"),
					 errhint("Write an internationalized host name in its punycode (\"xn--\") form.")));
	}
}

/*
 * ccp_http_refuse_userinfo raises the error for a URL (a proxy's when
 * proxy) that holds a user name or password.  Neither the URL nor the
 * statement, which holds it, is shown.
 */
static void
ccp_http_refuse_userinfo(bool proxy)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 proxy ?
			 errmsg("proxy URL must not contain a user name or password") :
			 errmsg("URL must not contain a user name or password"),
			 errhidestmt(true),
			 proxy ?
			 errhint("Give the proxy's credentials in the user mapping, as options proxy_user and proxy_password.") :
			 errhint("Credentials belong in the user mapping.")));
}

/*
 * ccp_http_check_userinfo raises an error if url (a proxy's when proxy)
 * may hold a user name or password, judged from its text alone, before
 * any other check: an "@" in what would be the authority, from after
 * "://" (or from the start without one) to the first "/", "?" or "#".
 * A URL libcurl cannot parse, or one with another problem, is refused as
 * holding credentials when it has one, so its error says so.
 */
void
ccp_http_check_userinfo(const char *url, bool proxy)
{
	const char *start = strstr(url, "://");
	size_t		len;

	start = (start != NULL) ? start + 3 : url;
	len = strcspn(start, "/?#");
	if (memchr(start, '@', len) != NULL)
		ccp_http_refuse_userinfo(proxy);
}

/*
 * ccp_http_check_url raises an error unless url is an absolute http or
 * https URL with a host, without credentials, query or fragment, and, when
 * plain http, to a loopback address or with ccpurge.allow_insecure_http
 * on.  The URL itself is never printed: it could carry a secret.
 */
void
ccp_http_check_url(const char *url)
{
	CcpUrlParts parts;

	ccp_http_check_userinfo(url, false);
	ccp_http_parse_url(url, &parts, false);
	if (parts.user != NULL || parts.password != NULL || parts.options != NULL)
		ccp_http_refuse_userinfo(false);

	if (parts.scheme == NULL ||
		(pg_strcasecmp(parts.scheme, "http") != 0 &&
		 pg_strcasecmp(parts.scheme, "https") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("URL scheme \"%s\" is not supported",
						parts.scheme ? parts.scheme : ""),
				 errdetail("Only http and https URLs are accepted.")));

	if (parts.host == NULL || parts.host[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("URL has no host")));

	/* the raw text too: an empty query or fragment does not show as a part */
	if (parts.query != NULL || parts.fragment != NULL ||
		strchr(url, '?') != NULL || strchr(url, '#') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("URL must not contain a query or fragment")));

	ccp_http_check_host(parts.host);

	if (pg_strcasecmp(parts.scheme, "http") == 0 &&
		!ccp_allow_insecure_http && !ccp_http_is_loopback(parts.host))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("plain http is only allowed to loopback addresses"),
				 errdetail("Host \"%s\" is not a loopback address.",
						   parts.host),
				 errhint("Use https, or have a superuser set ccpurge.allow_insecure_http to on.")));
}

/*
 * ccp_http_check_proxy raises an error unless proxy is an http, https or
 * socks5h URL made of a scheme, an ASCII host and an optional port, with
 * nothing else: no credentials (they belong in the user mapping), path,
 * query or fragment.  An https proxy also needs a libcurl that supports
 * one.  Like the server's URL, the proxy URL is never printed.
 */
void
ccp_http_check_proxy(const char *proxy)
{
	static const char *const schemes[] = {"http", "https", "socks5h"};
	CcpUrlParts parts;
	bool		known = false;

	ccp_http_check_userinfo(proxy, true);
	ccp_http_parse_url(proxy, &parts, true);
	if (parts.user != NULL || parts.password != NULL || parts.options != NULL)
		ccp_http_refuse_userinfo(true);

	for (int i = 0; i < lengthof(schemes); i++)
	{
		if (parts.scheme != NULL && pg_strcasecmp(parts.scheme, schemes[i]) == 0)
			known = true;
	}
	if (!known)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("proxy URL scheme \"%s\" is not supported",
						parts.scheme ? parts.scheme : ""),
				 errdetail("Only http, https and socks5h proxies are accepted; with socks5h the proxy resolves host names."),
				 errhint("Write the proxy as http://host:port, https://host:port or socks5h://host:port.")));

	if (parts.host == NULL || parts.host[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("proxy URL has no host")));

	/* the raw text too: an empty query or fragment does not show as a part */
	if ((parts.path != NULL && strcmp(parts.path, "/") != 0) ||
		parts.query != NULL || parts.fragment != NULL ||
		strchr(proxy, '?') != NULL || strchr(proxy, '#') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("proxy URL must not contain a path, query or fragment"),
				 errhint("Write the proxy as http://host:port, https://host:port or socks5h://host:port.")));

	ccp_http_check_host(parts.host);

	if (pg_strcasecmp(parts.scheme, "https") == 0 &&
		(curl_version_info(CURLVERSION_NOW)->features &
		 CURL_VERSION_HTTPS_PROXY) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("proxy URL scheme \"%s\" is not supported", parts.scheme),
				 errdetail("The libcurl this server uses was built without support for https proxies."),
				 errhint("Use an http or socks5h proxy.")));
}

/*
 * ccp_http_check_route raises an error if requests to url through proxy
 * (NULL: none) would carry plain http beyond this machine.
 * ccp_http_check_url() keeps plain http to loopback addresses; through a
 * proxy the request first travels to the proxy, and a loopback address in
 * url then means the proxy's own machine.  So plain http through a proxy
 * needs the proxy on a loopback address too, unless
 * ccpurge.allow_insecure_http is on.  Both URLs must have passed their own
 * checks.  Nothing here looks at no_proxy: its matching is libcurl's.
 */
void
ccp_http_check_route(const char *url, const char *proxy)
{
	CcpUrlParts target;
	CcpUrlParts via;

	if (proxy == NULL || ccp_allow_insecure_http)
		return;
	ccp_http_parse_url(url, &target, false);
	if (target.scheme == NULL || pg_strcasecmp(target.scheme, "http") != 0)
		return;
	ccp_http_parse_url(proxy, &via, true);
	if (via.host != NULL && ccp_http_is_loopback(via.host))
		return;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("plain http is only allowed to loopback addresses"),
			 errdetail("Requests would go through proxy host \"%s\", which is not a loopback address.",
					   via.host ? via.host : ""),
			 errhint("Use https, a proxy on a loopback address, or have a superuser set ccpurge.allow_insecure_http to on.")));
}

/*
 * ccp_http_host_port returns, palloc'd, the value libcurl sends in the Host
 * header for url: the host as its URL parser normalizes it (IPv6 in
 * brackets), followed by ":port" unless the port is the scheme's default
 * (80 for http, 443 for https).  Raises an error if url cannot be parsed.
 */
char *
ccp_http_host_port(const char *url)
{
	CcpUrlParts parts;
	bool		is_default;

	ccp_http_parse_url(url, &parts, false);
	if (parts.host == NULL || parts.host[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("URL has no host")));
	if (parts.port == NULL)
		return pstrdup(parts.host);

	is_default =
		(parts.scheme != NULL && pg_strcasecmp(parts.scheme, "https") == 0 &&
		 strcmp(parts.port, "443") == 0) ||
		(parts.scheme != NULL && pg_strcasecmp(parts.scheme, "http") == 0 &&
		 strcmp(parts.port, "80") == 0);
	if (is_default)
		return pstrdup(parts.host);
	return psprintf("%s:%s", parts.host, parts.port);
}

/*
 * ccp_http_escape percent-encodes len bytes of s (all of s when len is
 * negative) as curl_easy_escape does: every byte but A-Z a-z 0-9 - . _ ~
 * becomes %XX with upper-case hex.  Returns a palloc'd string.
 */
char *
ccp_http_escape(const char *s, int len)
{
	char	   *esc;
	char	   *volatile result = NULL;

	if (len < 0)
		len = strlen(s);
	/* curl_easy_escape takes a length of 0 to mean strlen() */
	if (len == 0)
		return pstrdup("");

	ccp_http_global_init();
	esc = curl_easy_escape(NULL, s, len);
	if (esc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_easy_escape() failed.")));
	PG_TRY();
	{
		result = pstrdup(esc);
	}
	PG_FINALLY();
	{
		curl_free(esc);
	}
	PG_END_TRY();
	return result;
}

/*
 * ccp_http_start checks req's URL and its route through opts->proxy, then
 * adds a transfer for req to the backend's multi handle and returns the
 * call; arg is handed back by ccp_http_call_arg().  opts->proxy, if set,
 * must have passed ccp_http_check_proxy().  req and opts need not outlive
 * this call.  The transfer makes progress only inside ccp_http_next_done()
 * or ccp_http_perform(); the caller must eventually pass the call to
 * ccp_http_finish(), or call ccp_http_abort_all().
 */
CcpHttpCall *
ccp_http_start(const CcpHttpOptions *opts, const CcpHttpRequest *req,
			   void *arg)
{
	CcpHttpCall *call;
	CURLM	   *multi;

	ccp_http_check_url(req->url);
	ccp_http_check_route(req->url, opts->proxy);
	multi = ccp_http_get_multi();

	call = (CcpHttpCall *) malloc(sizeof(CcpHttpCall));
	if (call == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	memset(call, 0, sizeof(CcpHttpCall));
	call->arg = arg;
	dlist_push_tail(&ccp_http_calls, &call->node);
	ccp_http_ncalls++;

	PG_TRY();
	{
		CURLMcode	mc;

		call->easy = ccp_http_get_easy();
		ccp_http_setup(call, opts, req);
		INSTR_TIME_SET_CURRENT(call->started);
		mc = curl_multi_add_handle(multi, call->easy);
		if (mc != CURLM_OK)
			ccp_http_multi_error(mc, "curl_multi_add_handle");
		call->in_multi = true;
	}
	PG_CATCH();
	{
		ccp_http_release(call);
		PG_RE_THROW();
	}
	PG_END_TRY();

	return call;
}

/*
 * ccp_http_next_done drives every transfer for at most timeout_ms
 * milliseconds (a negative value means no limit) and returns one finished
 * call, oldest first, or NULL if none finished in that time or nothing is
 * in flight.  Interrupts are checked between slices of at most
 * CCP_HTTP_SLICE_MS; if one raises an error, the calls stay in flight and
 * the caller's error cleanup must call ccp_http_abort_all().
 */
CcpHttpCall *
ccp_http_next_done(long timeout_ms)
{
	instr_time	start;

	if (ccp_http_multi == NULL)
		return NULL;

	INSTR_TIME_SET_CURRENT(start);
	for (;;)
	{
		int			running;
		instr_time	now;
		long		remaining = CCP_HTTP_SLICE_MS;

		CHECK_FOR_INTERRUPTS();
		running = ccp_http_run();

		if (!dlist_is_empty(&ccp_http_done))
		{
			CcpHttpCall *call;

			call = dlist_container(CcpHttpCall, done_node,
								   dlist_pop_head_node(&ccp_http_done));
			call->queued = false;
			return call;
		}
		if (running == 0)
			return NULL;

		if (timeout_ms >= 0)
		{
			INSTR_TIME_SET_CURRENT(now);
			INSTR_TIME_SUBTRACT(now, start);
			remaining = timeout_ms - (long) INSTR_TIME_GET_MILLISEC(now);
			if (remaining <= 0)
				return NULL;
		}
		ccp_http_wait(remaining);
	}
}

/*
 * ccp_http_call_arg returns the arg given to ccp_http_start() for call.
 */
void *
ccp_http_call_arg(CcpHttpCall *call)
{
	return call->arg;
}

/*
 * ccp_http_proxy_refusal returns, palloc'd, why the proxy of a finished
 * call refused it, or NULL if it did not: a request sent through the proxy
 * answered 407, which only proxies send (whether or not the proxy then
 * reset the connection, as some do before reading the body), or a tunnel
 * (CONNECT) answered with anything but 2xx.  *status is then set to 0, as
 * no answer of the server came back.  The caller must know that call was
 * configured with a proxy.
 */
static char *
ccp_http_proxy_refusal(CcpHttpCall *call, long *status)
{
	long		code = 0;

	if (*status == 407)
		code = 407;
	else if (call->result == CURLE_OK ||
			 curl_easy_getinfo(call->easy, CURLINFO_HTTP_CONNECTCODE,
							   &code) != CURLE_OK || code < 300)
		return NULL;

	*status = 0;
	if (code == 407 && call->proxy_auth)
		return pstrdup("the proxy refused the proxy credentials (HTTP 407)");
	if (code == 407)
		return pstrdup("the proxy requires authentication (HTTP 407), and no proxy credentials were given");
	return psprintf("the proxy refused to open a tunnel to the server (HTTP %ld)",
					code);
}

/*
 * ccp_http_finish fills res from a finished call, with strings palloc'd in
 * the current memory context, and releases the call.  The caller must have
 * got call from ccp_http_next_done() (or know it is done); call is invalid
 * afterwards.
 */
void
ccp_http_finish(CcpHttpCall *call, CcpHttpResult *res)
{
	if (!call->done)
		elog(ERROR, "HTTP transfer is still in progress");

	memset(res, 0, sizeof(CcpHttpResult));
	PG_TRY();
	{
		long		status = 0;
		char	   *refusal = NULL;

		if (curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE,
							  &status) != CURLE_OK)
			status = 0;
		if (call->proxied)
			refusal = ccp_http_proxy_refusal(call, &status);
		res->status = (int) status;
		res->elapsed_ms = call->elapsed_ms;
		res->resends = Max(call->sends - 1, 0);

		if (refusal != NULL)
		{
			res->transport_error = true;
			res->error = refusal;
			res->body = pstrdup("");
			res->body_len = 0;
		}
		else if (call->result != CURLE_OK || call->too_big || call->no_memory)
		{
			res->transport_error = true;
			res->timed_out = (call->result == CURLE_OPERATION_TIMEDOUT);
			if (call->too_big || call->result == CURLE_FILESIZE_EXCEEDED)
			{
				size_t		mib = 1024 * 1024;

				if (call->max_len % mib == 0)
					res->error = psprintf("response exceeds %zu MiB",
										  call->max_len / mib);
				else
					res->error = psprintf("response exceeds %zu kB",
										  call->max_len / 1024);
			}
			else if (call->no_memory)
				res->error = pstrdup("out of memory while receiving the response");
			else
			{
				const char *msg = call->errbuf[0] != '\0' ?
					call->errbuf : curl_easy_strerror(call->result);
				int			len = strlen(msg);

				/* the error buffer may end in a newline */
				while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
					len--;
				res->error = pnstrdup(msg, len);
			}
			/* a partial body is no answer */
			res->body = pstrdup("");
			res->body_len = 0;
		}
		else
		{
			res->body = palloc(call->len + 1);
			if (call->len > 0)
				memcpy(res->body, call->buf, call->len);
			res->body[call->len] = '\0';
			res->body_len = call->len;
		}
	}
	PG_FINALLY();
	{
		ccp_http_release(call);
	}
	PG_END_TRY();
}

/*
 * ccp_http_perform sends one request and waits for the answer, driving
 * other transfers of this backend too.  A transport failure is reported in
 * res; an interrupt (cancel, statement_timeout) raises an error after the
 * transfer has been torn down.
 */
void
ccp_http_perform(const CcpHttpOptions *opts, const CcpHttpRequest *req,
				 CcpHttpResult *res)
{
	CcpHttpCall *call;

	call = ccp_http_start(opts, req, NULL);
	PG_TRY();
	{
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			(void) ccp_http_run();
			if (call->done)
				break;
			ccp_http_wait(CCP_HTTP_SLICE_MS);
		}
	}
	PG_CATCH();
	{
		ccp_http_release(call);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* not for ccp_http_next_done(): this call is collected here */
	ccp_http_finish(call, res);
}

/*
 * ccp_http_abort_all stops and frees every call not yet finished, including
 * finished ones not yet passed to ccp_http_finish().  Meant for error
 * cleanup; never raises an error.  Pointers to calls are invalid
 * afterwards.  Idle connections are kept.
 */
void
ccp_http_abort_all(void)
{
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &ccp_http_calls)
	{
		CcpHttpCall *call = dlist_container(CcpHttpCall, node, iter.cur);

		ccp_http_release(call);
	}
}

/*
 * ccp_http_inflight returns how many calls have been started and not yet
 * finished or aborted, counting finished transfers not yet collected.
 */
int
ccp_http_inflight(void)
{
	return ccp_http_ncalls;
}
