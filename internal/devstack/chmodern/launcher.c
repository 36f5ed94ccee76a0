/*
 * ch-modern launcher: runs clickhouse-local from chdb's libchdb.so (ClickHouse 26.x built as a
 * library) with the given arguments, the way the clickhouse-local binary would.
 *
 *   launcher /path/to/libchdb.so --path=DIR --tcp_port=P ... --query="..."
 *
 * The library has no header in its npm package; query_stable_v2 is chdb's stable C entry, the
 * only one that runs clickhouse-local's main (and so can start TCP/HTTP listeners). stack.sh
 * builds this with gcc and keeps the binary in the stack's state dir.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct local_result_v2 {
	char *buf;
	size_t len;
	void *vec;
	double elapsed;
	uint64_t rows_read;
	uint64_t bytes_read;
	char *error_message;
};

typedef struct local_result_v2 *(*query_fn)(int argc, char **argv);

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s LIBCHDB.so [clickhouse-local arguments...]\n", argv[0]);
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL) {
		fprintf(stderr, "ch-modern launcher: load %s: %s\n", argv[1], dlerror());
		return 1;
	}
	query_fn query = (query_fn)dlsym(lib, "query_stable_v2");
	if (query == NULL) {
		fprintf(stderr, "ch-modern launcher: %s has no query_stable_v2: %s\n", argv[1], dlerror());
		return 1;
	}
	/* clickhouse-local reads its arguments from argv[1] on: the library path stands in for
	 * the program name. */
	struct local_result_v2 *res = query(argc - 1, argv + 1);
	if (res == NULL) {
		fprintf(stderr, "ch-modern launcher: clickhouse-local returned no result\n");
		return 1;
	}
	if (res->error_message != NULL) {
		fprintf(stderr, "ch-modern launcher: clickhouse-local: %s\n", res->error_message);
		return 1;
	}
	if (res->buf != NULL && res->len > 0)
		fwrite(res->buf, 1, res->len, stdout);
	return 0;
}
