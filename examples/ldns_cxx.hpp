// libldns for C++ code. Debian's <ldns/common.h> (built without
// <stdbool.h>) defines `bool`, `true` and `false` as macros; in C++ they
// stay defined for everything included after it, so `false` becomes the
// int 0 (e.g. `caf::get_or(content, "help", false)` then asks for an integer
// and never finds the flag: mdns_dump's --help lost its limits). This
// header includes ldns and removes the three macros (ldns's `_Bool` is a
// typedef of `bool` in C++, so its declarations are unchanged).
#pragma once

#include <ldns/ldns.h>

#undef bool
#undef true
#undef false
