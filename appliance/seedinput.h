/* seedinput.h - raw seed inputs (module.h: seed_inputs): finding a posted body's kind. */
#ifndef LARDER_SEEDINPUT_H
#define LARDER_SEEDINPUT_H

#include <stddef.h>

struct larder_seed_input;

/* 1 when text is meant as a seed spec: a YAML mapping with pin_set or a protocol's section */
int larder_seed_input_is_spec(const char *text, size_t len);
/* the kind of text: 0 with *kind ("spec" or a module's kind); -1 when nothing fits, -2 when it is ambiguous, with
 * the message (naming the candidates) in msg */
int larder_seed_input_detect(const char *text, size_t len, const char **kind, char *msg, size_t msglen);
/* the module's declaration of kind and its protocol, NULL when no module has it ("spec" is none) */
const struct larder_seed_input *larder_seed_input_find(const char *kind, int *proto);
/* "spec, requirements, package-lock, ..." */
void larder_seed_input_kinds(char *out, size_t outlen);

#endif
