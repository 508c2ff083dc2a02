/* Placeholder so a layer with no sources yet still forms a library. */
typedef int mcli_empty_translation_unit;
