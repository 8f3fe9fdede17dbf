#ifndef UPLOADER_CUDEV_SHIM_H
#define UPLOADER_CUDEV_SHIM_H
#include <libudev.h>
#include <sys/socket.h>
#endif
