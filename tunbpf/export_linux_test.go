package tunbpf

// FlowHashForTest gives the external tests the Go model of the steering
// hash (model_linux_test.go).
func FlowHashForTest(s FlowSteering, pkt []byte) uint32 { return modelHash(s.Seed, pkt) }
