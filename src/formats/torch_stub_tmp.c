/* Temporary: the PyTorch readers land in torch_zip.c / torch_legacy.c. */
#include "formats/weights_internal.h"

mcli_status torch_zip_load(mcli_weights *w, const char *path, mcli_err *err)
{
    (void)w;
    return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: PyTorch zip checkpoints are not readable yet", path);
}

mcli_status torch_legacy_load(mcli_weights *w, const char *path, mcli_err *err)
{
    (void)w;
    return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: legacy PyTorch checkpoints are not readable yet", path);
}
