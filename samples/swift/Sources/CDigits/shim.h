/* The model's header, on the include path that digits.pc gives. */
#include "digits.h"
