#!/usr/bin/perl
# Prints Sisimai's verdict on every message given: file, recipient, reason, delivery status,
# feedback type, one line each (tab-separated); a message it does not take for a bounce prints
# "-" as its recipient and reason. Vacation replies count (vacation => 1).
use strict;
use warnings;
use Sisimai;
use File::Basename;

for my $file (@ARGV) {
    my $name = basename($file);
    my $found = Sisimai->make($file, vacation => 1, delivered => 1) // [];
    if (!@$found) {
        print join("\t", $name, "-", "-", "-", "-"), "\n";
        next;
    }
    for my $r (@$found) {
        my $recipient = $r->recipient ? lc($r->recipient->address) : "-";
        print join("\t", $name, $recipient, $r->reason // "-", $r->deliverystatus || "-",
            $r->feedbacktype || "-"), "\n";
    }
}
