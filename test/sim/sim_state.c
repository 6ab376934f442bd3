/*-------------------------------------------------------------------------
 *
 * sim_state.c
 *	  The simulator's shared state: the lock, the clocks, string sets, the
 *	  deleted sets, request and rejection counters, concurrency peaks, the
 *	  request log, runtime configuration, and small parsing helpers the
 *	  vendors share.
 *
 * One mutex guards all of it.  Functions here expect the caller to hold
 * it unless their comment says otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "sim.h"

/* One member of a SimSet. */
typedef struct SimSetNode
{
	struct SimSetNode *next;
	uint64_t	hash;
	char		key[];
} SimSetNode;

/* A set of strings: a chained hash table that grows as it fills. */
struct SimSet
{
	SimSetNode **buckets;
	size_t		nbuckets;
	long		count;
};

/* One entry of the request log. */
typedef struct SimLogEntry
{
	const char *endpoint;
	int			status;
	int			items;
	int64_t		at_ms;
	int64_t		duration_ms;
	char		code[48];
	char		message[128];
	bool		has_idem_key;
	char		idem_key[SIM_IDEM_KEY_MAX + 1];
} SimLogEntry;

/* The last SIM_ITEMS_MAX item counts of one endpoint, oldest first. */
typedef struct SimItemsRing
{
	int			sizes[SIM_ITEMS_MAX];
	int			start;
	int			count;
} SimItemsRing;

/* A flattened view of every vendor route, in vendor-table order. */
typedef struct SimEndpoint
{
	const SimRoute *route;
	const SimVendor *vendor;
	int			vendor_index;
	long		requests;
	SimItemsRing *items;		/* NULL unless SIM_ROUTE_ITEMS */
} SimEndpoint;

/* A deleted set by name. */
typedef struct SimNamedSet
{
	const char *name;
	struct SimSet *set;
} SimNamedSet;

static pthread_mutex_t st_mutex = PTHREAD_MUTEX_INITIALIZER;

static SimEndpoint *st_endpoints;
static int	st_nendpoints;
static SimNamedSet *st_sets;
static int	st_nsets;
static long st_rejections[SIM_REJ_COUNT];
static int *st_vendor_cur;
static int *st_vendor_peak;
static int	st_all_cur;
static int	st_all_peak;
static SimLogEntry *st_log;
static int	st_log_start;
static int	st_log_count;

/* sim_lock takes the state lock. */
void
sim_lock(void)
{
	pthread_mutex_lock(&st_mutex);
}

/* sim_unlock releases the state lock. */
void
sim_unlock(void)
{
	pthread_mutex_unlock(&st_mutex);
}

/* sim_wall_ms returns the wall clock in epoch milliseconds.  No lock. */
int64_t
sim_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sim_mono_ms returns a monotonic clock in milliseconds.  No lock. */
int64_t
sim_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * sim_random_hex writes 2 * nbytes random lower-case hex digits and a NUL
 * to out, which must hold 2 * nbytes + 1 bytes.  No lock.
 */
void
sim_random_hex(char *out, int nbytes)
{
	unsigned char buf[64];
	static const char hex[] = "0123456789abcdef";

	if (nbytes > (int) sizeof(buf))
		nbytes = sizeof(buf);
	if (RAND_bytes(buf, nbytes) != 1)
	{
		/* never expected; fall back to something unique enough */
		for (int i = 0; i < nbytes; i++)
			buf[i] = (unsigned char) (rand() & 0xff);
	}
	for (int i = 0; i < nbytes; i++)
	{
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 0xf];
	}
	out[2 * nbytes] = '\0';
}

/* ---------------------------------------------------------------- sets */

/* sim_hash is FNV-1a over a NUL-terminated string. */
uint64_t
sim_hash(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s; s++)
	{
		h ^= (unsigned char) *s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* sim_set_new makes an empty set.  Aborts when out of memory. */
struct SimSet *
sim_set_new(void)
{
	struct SimSet *set = calloc(1, sizeof(struct SimSet));

	if (set == NULL)
		abort();
	set->nbuckets = 64;
	set->buckets = calloc(set->nbuckets, sizeof(SimSetNode *));
	if (set->buckets == NULL)
		abort();
	return set;
}

/* sim_set_clear removes every member of set. */
void
sim_set_clear(struct SimSet *set)
{
	for (size_t i = 0; i < set->nbuckets; i++)
	{
		SimSetNode *n = set->buckets[i];

		while (n != NULL)
		{
			SimSetNode *next = n->next;

			free(n);
			n = next;
		}
		set->buckets[i] = NULL;
	}
	set->count = 0;
}

/* sim_set_free releases set and its members. */
void
sim_set_free(struct SimSet *set)
{
	if (set == NULL)
		return;
	sim_set_clear(set);
	free(set->buckets);
	free(set);
}

/* st_set_grow doubles the bucket array of set and rehashes its members. */
static void
st_set_grow(struct SimSet *set)
{
	size_t		nb = set->nbuckets * 2;
	SimSetNode **b = calloc(nb, sizeof(SimSetNode *));

	if (b == NULL)
		abort();
	for (size_t i = 0; i < set->nbuckets; i++)
	{
		SimSetNode *n = set->buckets[i];

		while (n != NULL)
		{
			SimSetNode *next = n->next;
			size_t		j = n->hash & (nb - 1);

			n->next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(set->buckets);
	set->buckets = b;
	set->nbuckets = nb;
}

/* sim_set_add adds key to set; returns true if it was not there before. */
bool
sim_set_add(struct SimSet *set, const char *key)
{
	uint64_t	h = sim_hash(key);
	size_t		len = strlen(key);
	SimSetNode *n;

	for (n = set->buckets[h & (set->nbuckets - 1)]; n != NULL; n = n->next)
		if (n->hash == h && strcmp(n->key, key) == 0)
			return false;
	if ((size_t) set->count >= set->nbuckets * 2)
		st_set_grow(set);
	n = malloc(sizeof(SimSetNode) + len + 1);
	if (n == NULL)
		abort();
	n->hash = h;
	memcpy(n->key, key, len + 1);
	n->next = set->buckets[h & (set->nbuckets - 1)];
	set->buckets[h & (set->nbuckets - 1)] = n;
	set->count++;
	return true;
}

/* sim_set_remove removes key from set; returns true if it was there. */
bool
sim_set_remove(struct SimSet *set, const char *key)
{
	uint64_t	h = sim_hash(key);
	SimSetNode **p = &set->buckets[h & (set->nbuckets - 1)];

	for (; *p != NULL; p = &(*p)->next)
	{
		if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
		{
			SimSetNode *n = *p;

			*p = n->next;
			free(n);
			set->count--;
			return true;
		}
	}
	return false;
}

/* sim_set_contains says whether key is a member of set. */
bool
sim_set_contains(struct SimSet *set, const char *key)
{
	uint64_t	h = sim_hash(key);
	SimSetNode *n;

	for (n = set->buckets[h & (set->nbuckets - 1)]; n != NULL; n = n->next)
		if (n->hash == h && strcmp(n->key, key) == 0)
			return true;
	return false;
}

/* sim_set_count returns the number of members of set. */
long
sim_set_count(struct SimSet *set)
{
	return set->count;
}

/* st_strcmp_p compares two char * for qsort. */
static int
st_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* sim_set_to_json returns the members of set as a sorted JSON array. */
cJSON *
sim_set_to_json(struct SimSet *set)
{
	const char **keys = malloc(sizeof(char *) * (set->count + 1));
	long		k = 0;
	cJSON	   *arr = cJSON_CreateArray();

	if (keys == NULL)
		abort();
	for (size_t i = 0; i < set->nbuckets; i++)
		for (SimSetNode *n = set->buckets[i]; n != NULL; n = n->next)
			keys[k++] = n->key;
	qsort(keys, k, sizeof(char *), st_strcmp_p);
	for (long i = 0; i < k; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(keys[i]));
	free(keys);
	return arr;
}

/* ------------------------------------------------------- registry, init */

/* st_vendor_index returns the position of v in the vendor table. */
static int
st_vendor_index(const SimVendor *v)
{
	for (int i = 0; i < sim_nvendors; i++)
		if (sim_vendors[i] == v)
			return i;
	return -1;
}

/* st_config_reset_items puts n configuration items back to defaults. */
static void
st_config_reset_items(const SimConfItem *items, int n)
{
	for (int i = 0; i < n; i++)
	{
		const SimConfItem *c = &items[i];

		switch (c->type)
		{
			case SIM_CONF_INT:
				*(int *) c->value = c->def_int;
				break;
			case SIM_CONF_SET:
				if (*(struct SimSet **) c->value == NULL)
					*(struct SimSet **) c->value = sim_set_new();
				sim_set_clear(*(struct SimSet **) c->value);
				break;
			case SIM_CONF_STRING:
				snprintf((char *) c->value, 32, "%s",
						 c->def_str ? c->def_str : "");
				break;
			case SIM_CONF_DOUBLE:
				*(double *) c->value = c->def_int;
				break;
			case SIM_CONF_ENUM:
				snprintf((char *) c->value, 32, "%.*s",
						 (int) strcspn(c->def_str, "|"), c->def_str);
				break;
		}
	}
}

/*
 * st_config_reset puts every vendor's configuration, and chaos mode's, back
 * to defaults.
 */
static void
st_config_reset(void)
{
	for (int v = 0; v < sim_nvendors; v++)
		st_config_reset_items(sim_vendors[v]->config, sim_vendors[v]->nconfig);
	st_config_reset_items(sim_chaos_config, sim_chaos_nconfig);
}

/*
 * sim_state_init builds the endpoint and set registries from the vendor
 * table and sets every vendor up.  Called once before any thread starts.
 */
void
sim_state_init(void)
{
	int			n = 0;
	int			ns = 0;

	for (int v = 0; v < sim_nvendors; v++)
	{
		n += sim_vendors[v]->nroutes;
		for (const char *const *s = sim_vendors[v]->sets; s && *s; s++)
			ns++;
	}
	st_endpoints = calloc(n ? n : 1, sizeof(SimEndpoint));
	st_sets = calloc(ns ? ns : 1, sizeof(SimNamedSet));
	st_vendor_cur = calloc(sim_nvendors > 0 ? (size_t) sim_nvendors : 1, sizeof(int));
	st_vendor_peak = calloc(sim_nvendors > 0 ? (size_t) sim_nvendors : 1, sizeof(int));
	st_log = calloc(SIM_LOG_MAX, sizeof(SimLogEntry));
	if (!st_endpoints || !st_sets || !st_vendor_cur || !st_vendor_peak || !st_log)
		abort();

	for (int v = 0; v < sim_nvendors; v++)
	{
		const SimVendor *vendor = sim_vendors[v];

		for (int r = 0; r < vendor->nroutes; r++)
		{
			SimEndpoint *e = &st_endpoints[st_nendpoints++];

			e->route = &vendor->routes[r];
			e->vendor = vendor;
			e->vendor_index = v;
			if (e->route->flags & SIM_ROUTE_ITEMS)
			{
				e->items = calloc(1, sizeof(SimItemsRing));
				if (e->items == NULL)
					abort();
			}
		}
		for (const char *const *s = vendor->sets; s && *s; s++)
		{
			st_sets[st_nsets].name = *s;
			st_sets[st_nsets].set = sim_set_new();
			st_nsets++;
		}
	}
	st_config_reset();
	sim_chaos_reset();
	for (int v = 0; v < sim_nvendors; v++)
		if (sim_vendors[v]->init)
			sim_vendors[v]->init();
}

/*
 * sim_state_reset forgets everything: counters, sets, log, configuration
 * and each vendor's own state.  Pending faults are the caller's business.
 */
void
sim_state_reset(void)
{
	for (int i = 0; i < st_nendpoints; i++)
	{
		st_endpoints[i].requests = 0;
		if (st_endpoints[i].items)
			memset(st_endpoints[i].items, 0, sizeof(SimItemsRing));
	}
	for (int i = 0; i < st_nsets; i++)
		sim_set_clear(st_sets[i].set);
	memset(st_rejections, 0, sizeof(st_rejections));
	for (int v = 0; v < sim_nvendors; v++)
		st_vendor_peak[v] = st_vendor_cur[v];
	st_all_peak = st_all_cur;
	st_log_start = 0;
	st_log_count = 0;
	st_config_reset();
	sim_chaos_reset();
	for (int v = 0; v < sim_nvendors; v++)
		if (sim_vendors[v]->reset)
			sim_vendors[v]->reset();
}

/* sim_route_count returns the number of vendor routes.  No lock. */
int
sim_route_count(void)
{
	return st_nendpoints;
}

/*
 * sim_route_at returns route number index and stores its vendor.  No lock:
 * the registry does not change after sim_state_init.
 */
const SimRoute *
sim_route_at(int index, const SimVendor **vendor)
{
	*vendor = st_endpoints[index].vendor;
	return st_endpoints[index].route;
}

/* sim_deleted_set returns the deleted set of that name, or NULL.  No lock. */
struct SimSet *
sim_deleted_set(const char *name)
{
	for (int i = 0; i < st_nsets; i++)
		if (strcmp(st_sets[i].name, name) == 0)
			return st_sets[i].set;
	return NULL;
}

/* ------------------------------------------------------------ counters */

/* sim_count_rejection counts one refused request of the given kind. */
void
sim_count_rejection(SimRejection kind)
{
	st_rejections[kind]++;
}

/* sim_count_request counts one request to route route_index. */
void
sim_count_request(int route_index)
{
	st_endpoints[route_index].requests++;
}

/* sim_record_items remembers the item count of one request. */
void
sim_record_items(int route_index, int items)
{
	SimItemsRing *r = st_endpoints[route_index].items;

	if (r == NULL)
		return;
	if (r->count < SIM_ITEMS_MAX)
		r->sizes[(r->start + r->count++) % SIM_ITEMS_MAX] = items;
	else
	{
		r->sizes[r->start] = items;
		r->start = (r->start + 1) % SIM_ITEMS_MAX;
	}
}

/* sim_inflight_enter counts a vendor request as being handled. */
void
sim_inflight_enter(SimRequest *req)
{
	if (++st_all_cur > st_all_peak)
		st_all_peak = st_all_cur;
	if (req->route && (req->route->flags & SIM_ROUTE_INFLIGHT))
	{
		int			v = st_vendor_index(req->vendor);

		if (++st_vendor_cur[v] > st_vendor_peak[v])
			st_vendor_peak[v] = st_vendor_cur[v];
	}
}

/* sim_inflight_leave undoes sim_inflight_enter for the same request. */
void
sim_inflight_leave(SimRequest *req)
{
	st_all_cur--;
	if (req->route && (req->route->flags & SIM_ROUTE_INFLIGHT))
		st_vendor_cur[st_vendor_index(req->vendor)]--;
}

/* sim_log_add appends the finished request req to the request log. */
void
sim_log_add(SimRequest *req, int64_t duration_ms)
{
	SimLogEntry *e;

	if (st_log_count < SIM_LOG_MAX)
		e = &st_log[(st_log_start + st_log_count++) % SIM_LOG_MAX];
	else
	{
		e = &st_log[st_log_start];
		st_log_start = (st_log_start + 1) % SIM_LOG_MAX;
	}
	e->endpoint = req->route ? req->route->endpoint : "unknown";
	e->status = req->status;
	e->items = req->items;
	e->at_ms = req->arrival_wall_ms;
	e->duration_ms = duration_ms;
	snprintf(e->code, sizeof(e->code), "%s", req->code);
	snprintf(e->message, sizeof(e->message), "%s", req->message);
	e->has_idem_key = req->has_idem_key;
	if (req->has_idem_key)
		memcpy(e->idem_key, req->idem_key, sizeof(e->idem_key));
}

/* sim_log_json returns the last n log entries, oldest first. */
cJSON *
sim_log_json(int n)
{
	cJSON	   *arr = cJSON_CreateArray();

	if (n > st_log_count)
		n = st_log_count;
	if (n < 0)
		n = 0;
	for (int i = st_log_count - n; i < st_log_count; i++)
	{
		SimLogEntry *e = &st_log[(st_log_start + i) % SIM_LOG_MAX];
		cJSON	   *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "endpoint", e->endpoint);
		cJSON_AddNumberToObject(o, "status", e->status);
		cJSON_AddNumberToObject(o, "items", e->items);
		cJSON_AddNumberToObject(o, "at_ms", (double) e->at_ms);
		cJSON_AddNumberToObject(o, "duration_ms", (double) e->duration_ms);
		cJSON_AddStringToObject(o, "code", e->code);
		cJSON_AddStringToObject(o, "message", e->message);
		if (e->has_idem_key)
			cJSON_AddStringToObject(o, "idempotency_key", e->idem_key);
		else
			cJSON_AddNullToObject(o, "idempotency_key");
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

/* sim_state_json returns the body of GET /_sim/state. */
cJSON *
sim_state_json(void)
{
	cJSON	   *root = cJSON_CreateObject();
	cJSON	   *o;

	o = cJSON_AddObjectToObject(root, "requests");
	for (int i = 0; i < st_nendpoints; i++)
		cJSON_AddNumberToObject(o, st_endpoints[i].route->endpoint,
								st_endpoints[i].requests);

	o = cJSON_AddObjectToObject(root, "rejections");
	cJSON_AddNumberToObject(o, "auth", st_rejections[SIM_REJ_AUTH]);
	cJSON_AddNumberToObject(o, "rate", st_rejections[SIM_REJ_RATE]);
	cJSON_AddNumberToObject(o, "inflight", st_rejections[SIM_REJ_INFLIGHT]);
	cJSON_AddNumberToObject(o, "limit", st_rejections[SIM_REJ_LIMIT]);

	o = cJSON_AddObjectToObject(root, "tokens_issued");
	for (int v = 0; v < sim_nvendors; v++)
		if (sim_vendors[v]->tokens_issued)
			cJSON_AddNumberToObject(o, sim_vendors[v]->name,
									sim_vendors[v]->tokens_issued());

	o = cJSON_AddObjectToObject(root, "deleted");
	for (int i = 0; i < st_nsets; i++)
		cJSON_AddNumberToObject(o, st_sets[i].name,
								sim_set_count(st_sets[i].set));

	o = cJSON_AddObjectToObject(root, "max_inflight");
	for (int v = 0; v < sim_nvendors; v++)
		if (sim_vendors[v]->reports_inflight)
			cJSON_AddNumberToObject(o, sim_vendors[v]->name, st_vendor_peak[v]);
	cJSON_AddNumberToObject(o, "all", st_all_peak);

	o = cJSON_AddObjectToObject(root, "items_per_request");
	for (int i = 0; i < st_nendpoints; i++)
	{
		SimItemsRing *r = st_endpoints[i].items;
		cJSON	   *arr;

		if (r == NULL)
			continue;
		arr = cJSON_AddArrayToObject(o, st_endpoints[i].route->endpoint);
		for (int k = 0; k < r->count; k++)
			cJSON_AddItemToArray(arr,
								 cJSON_CreateNumber(r->sizes[(r->start + k) % SIM_ITEMS_MAX]));
	}

	sim_chaos_state(root);
	for (int v = 0; v < sim_nvendors; v++)
		if (sim_vendors[v]->state)
			sim_vendors[v]->state(root);
	return root;
}

/* --------------------------------------------------------- configuration */

/*
 * st_config_find returns the configuration item called name, a vendor's or
 * chaos mode's, or NULL.
 */
static const SimConfItem *
st_config_find(const char *name)
{
	for (int v = 0; v < sim_nvendors; v++)
		for (int i = 0; i < sim_vendors[v]->nconfig; i++)
			if (strcmp(sim_vendors[v]->config[i].name, name) == 0)
				return &sim_vendors[v]->config[i];
	for (int i = 0; i < sim_chaos_nconfig; i++)
		if (strcmp(sim_chaos_config[i].name, name) == 0)
			return &sim_chaos_config[i];
	return NULL;
}

/* st_config_is_chaos says whether c is one of chaos mode's items. */
static bool
st_config_is_chaos(const SimConfItem *c)
{
	return c >= sim_chaos_config && c < sim_chaos_config + sim_chaos_nconfig;
}

/*
 * st_enum_has says whether word is one of the '|'-separated words of
 * choices.
 */
static bool
st_enum_has(const char *choices, const char *word)
{
	size_t		len = strlen(word);

	while (*choices)
	{
		size_t		n = strcspn(choices, "|");

		if (n == len && len > 0 && strncmp(choices, word, n) == 0)
			return true;
		choices += n;
		if (*choices == '|')
			choices++;
	}
	return false;
}

/*
 * st_config_value says whether value is acceptable for c; if store is true
 * it also stores the value there.
 */
static bool
st_config_value(const SimConfItem *c, cJSON *value, bool store)
{
	switch (c->type)
	{
		case SIM_CONF_INT:
			{
				double		d;

				if (!cJSON_IsNumber(value))
					return false;
				d = value->valuedouble;
				if (d != (double) (long) d || d < c->min || d > c->max)
					return false;
				if (store)
					*(int *) c->value = (int) d;
				return true;
			}
		case SIM_CONF_SET:
			{
				cJSON	   *el;

				if (!cJSON_IsArray(value))
					return false;
				cJSON_ArrayForEach(el, value)
				{
					if (cJSON_IsNumber(el))
					{
						if (el->valuedouble != (double) (long) el->valuedouble)
							return false;
					}
					else if (!cJSON_IsString(el))
						return false;
				}
				if (store)
				{
					struct SimSet *set = *(struct SimSet **) c->value;

					sim_set_clear(set);
					cJSON_ArrayForEach(el, value)
					{
						char		buf[32];

						if (cJSON_IsNumber(el))
						{
							snprintf(buf, sizeof(buf), "%ld", (long) el->valuedouble);
							sim_set_add(set, buf);
						}
						else
							sim_set_add(set, el->valuestring);
					}
				}
				return true;
			}
		case SIM_CONF_STRING:
			if (!cJSON_IsString(value) || strlen(value->valuestring) > 31 ||
				value->valuestring[0] == '\0')
				return false;
			if (store)
				snprintf((char *) c->value, 32, "%s", value->valuestring);
			return true;
		case SIM_CONF_DOUBLE:
			if (!cJSON_IsNumber(value) || !(value->valuedouble >= c->min) ||
				!(value->valuedouble <= c->max))
				return false;
			if (store)
				*(double *) c->value = value->valuedouble;
			return true;
		case SIM_CONF_ENUM:
			if (!cJSON_IsString(value) || !st_enum_has(c->def_str, value->valuestring))
				return false;
			if (store)
				snprintf((char *) c->value, 32, "%s", value->valuestring);
			return true;
	}
	return false;
}

/*
 * sim_config_apply applies a POST /_sim/config object.  Either every key is
 * applied or none; returns NULL on success or a static error message.  If
 * it sets any chaos key, the chaos generator starts again from chaos_seed.
 */
const char *
sim_config_apply(cJSON *obj)
{
	static char err[160];
	cJSON	   *item;
	bool		chaos = false;

	if (!cJSON_IsObject(obj))
		return "the body must be a JSON object";
	cJSON_ArrayForEach(item, obj)
	{
		const SimConfItem *c = st_config_find(item->string);

		if (c == NULL)
		{
			snprintf(err, sizeof(err), "unknown configuration key \"%.80s\"",
					 item->string);
			return err;
		}
		if (!st_config_value(c, item, false))
		{
			snprintf(err, sizeof(err), "invalid value for configuration key \"%s\"",
					 c->name);
			return err;
		}
	}
	cJSON_ArrayForEach(item, obj)
	{
		const SimConfItem *c = st_config_find(item->string);

		st_config_value(c, item, true);
		chaos = chaos || st_config_is_chaos(c);
	}
	if (chaos)
		sim_chaos_restart();
	return NULL;
}

/* ------------------------------------------------------------- helpers */

/*
 * sim_parse_object parses the request body as JSON and returns it if it
 * is an object, else NULL.  The caller frees it with cJSON_Delete.  No lock.
 */
cJSON *
sim_parse_object(SimRequest *req)
{
	cJSON	   *root;

	if (req->body == NULL || req->body_len == 0)
		return NULL;
	root = cJSON_ParseWithLength(req->body, req->body_len);
	if (root != NULL && !cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* sim_is_digits says whether s is a non-empty run of ASCII digits.  No lock. */
bool
sim_is_digits(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * sim_parse_int parses s, which must be plain ASCII digits, as an integer in
 * [min, max].  No lock.
 */
bool
sim_parse_int(const char *s, int min, int max, int *out)
{
	long		v = 0;

	if (!sim_is_digits(s) || strlen(s) > 9)
		return false;
	for (; *s; s++)
		v = v * 10 + (*s - '0');
	if (v < min || v > max)
		return false;
	*out = (int) v;
	return true;
}

/* sim_utf8_length counts the characters of the UTF-8 string s.  No lock. */
long
sim_utf8_length(const char *s)
{
	long		n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xc0) != 0x80)
			n++;
	return n;
}
