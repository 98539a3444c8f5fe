package lab

// agnhost is the upstream e2e suite's test program; the lab runs it for any agnhost image.
const agnhost = "agnhost"
