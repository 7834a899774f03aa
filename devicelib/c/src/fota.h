/*
 * Arduino's library layout compiles src/ and puts only src/ on the include
 * path, so the public header is reachable from here too (library.properties,
 * README "Arduino and PlatformIO"). The header itself is include/fota.h.
 */
#include "../include/fota.h"
