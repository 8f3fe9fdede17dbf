#ifndef UPLOADER_CUMOCKDEV_SHIM_H
#define UPLOADER_CUMOCKDEV_SHIM_H
#include <umockdev.h>
#endif
