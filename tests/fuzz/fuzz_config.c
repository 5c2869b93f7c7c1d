/*
 * tests/fuzz/fuzz_config.c: fuzzes the config loader (YAML subset, value parsing, validation):
 * the input is written to a temp file and loaded with px_config_load_file; a success is
 * freed, an error must come with a message. Nothing may crash or leak (ASan/LSan).
 * Thread: one. Alloc: tcache (mem_malloc) inside the loader.
 */
#include "mem/base.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem/mem.h"
#include "proxy/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!mem_is_initialised() && mem_init(NULL) != 0)
        abort();
    if (path[0] == 0) {
        snprintf(path, sizeof(path), "/tmp/weir-fuzz-config.%d.yaml", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    px_config_t *cfg = NULL;
    char err[512] = "";
    int rc = px_config_load_file(path, &cfg, err, sizeof(err));
    if (rc == 0) {
        MEM_ASSERT(cfg != NULL);
        px_config_free(cfg);
    } else {
        MEM_ASSERT(cfg == NULL);
        MEM_ASSERT(rc < 0);
        MEM_ASSERT(err[0] != 0); /* every error explains itself */
    }
    unlink(path);
    return 0;
}
