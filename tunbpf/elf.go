package tunbpf

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
)

// LoadProgram loads one program from a compiled eBPF ELF object, for
// AttachFilter or AttachSteering. section names the ELF section holding it,
// for example "socket" for a C function marked SEC("socket"); when no
// section has that name, section may instead be the program's (function's)
// name, which also picks one program out of a section holding several.
//
// The program must be a socket filter (cilium/ebpf derives the type from
// the section name: "socket" and "socket/..." sections are socket
// filters); any other type gives an error wrapping ErrProgramType before
// anything is loaded. Maps the object declares are created with it; the
// program keeps the ones it uses alive. The caller owns the returned
// program and closes it when done. Loading needs the privileges described
// in the package documentation; a verifier rejection is returned as an
// error wrapping *ebpf.VerifierError. Safe to call from any goroutine.
func LoadProgram(path, section string) (*ebpf.Program, error) {
	const op = "LoadProgram"
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		return nil, fmt.Errorf("tunbpf: %s %s: %w", op, path, err)
	}
	name, err := pickProgram(spec, section)
	if err != nil {
		return nil, fmt.Errorf("tunbpf: %s %s: %w", op, path, err)
	}
	ps := spec.Programs[name]
	if ps.Type != ebpf.SocketFilter {
		return nil, fmt.Errorf("tunbpf: %s %s: %w: program %q in section %q is of type %v",
			op, path, ErrProgramType, name, ps.SectionName, ps.Type)
	}

	// Load only the chosen program, with the object's maps.
	one := spec.Copy()
	for n := range one.Programs {
		if n != name {
			delete(one.Programs, n)
		}
	}
	coll, err := ebpf.NewCollection(one)
	if err != nil {
		return nil, explainLoad(op+" "+path, err)
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

// pickProgram finds the program section names, or failing that the program
// named section.
func pickProgram(spec *ebpf.CollectionSpec, section string) (string, error) {
	var inSection, sections []string
	for name, ps := range spec.Programs {
		if ps.SectionName == section {
			inSection = append(inSection, name)
		}
		sections = append(sections, fmt.Sprintf("%s (%s)", ps.SectionName, name))
	}
	slices.Sort(inSection)
	slices.Sort(sections)
	switch {
	case len(inSection) == 1:
		return inSection[0], nil
	case len(inSection) > 1:
		return "", fmt.Errorf("section %q holds %d programs (%s): name one of them instead",
			section, len(inSection), strings.Join(inSection, ", "))
	}
	if _, ok := spec.Programs[section]; ok {
		return section, nil
	}
	if len(sections) == 0 {
		return "", fmt.Errorf("the object holds no program")
	}
	return "", fmt.Errorf("no section or program %q; the object holds: %s", section, strings.Join(sections, ", "))
}
