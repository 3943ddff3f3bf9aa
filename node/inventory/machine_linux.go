package inventory

import "golang.org/x/sys/unix"

// machine returns the kernel's machine name ("x86_64"), as uname -m does.
func machine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Machine[:])
}
