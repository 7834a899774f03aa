/*
 * Arduino's library layout compiles src/ and puts only src/ on the include
 * path, so this header is reachable from here too (library.properties,
 * README "Arduino and PlatformIO"). The header itself is include/fota_crypto.h.
 */
#include "../include/fota_crypto.h"
