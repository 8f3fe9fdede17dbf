#ifndef UPLOADER_CLIBUSB_SHIM_H
#define UPLOADER_CLIBUSB_SHIM_H
#include <libusb.h>
#endif
