/* libFuzzer target: whole checkpoint files through weights_open_file(), i.e. the container
 * readers (minizip for torch zip, the legacy layout, safetensors) on fuzzed bytes, converting
 * and metadata-only. The input is
 * written to an in-memory file (memfd) so minizip and mmap see a real path. Build and run with
 * tests/fuzz/run.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("ckpt", 0);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    mcli_weights *w = NULL;
    mcli_err err;
    if (off == size && weights_open_file(path, &w, &err) == MCLI_OK) {
        volatile float sink = 0;
        for (size_t i = 0; i < weights_count(w); i++) {
            const mcli_tensor *t = weights_at(w, i);
            for (size_t k = 0; t->data && k < t->numel; k++)
                sink += t->data[k];
        }
        (void)sink;
        weights_free(w);
    }
    if (off == size && weights_open_meta(path, &w, &err) == MCLI_OK)
        weights_free(w);
    close(fd);
    return 0;
}
